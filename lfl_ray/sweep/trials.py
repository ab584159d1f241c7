"""One trial of a sweep as a typed value: the method, the learning rate, the regularizers, the seed.

``TrialSpec`` is what travels from the spec through Ray Tune to the trial and into MLflow.
Its ``key`` names the trial's MLflow run and its Ray Train storage (resume finds both by it)
and is unique by construction: a readable part plus a short hash of every field at full
precision, so ``1e-3`` and ``1.2e-3`` are two trials. Its ``family`` is how the analysis
groups trials (``full``, ``full+wd``, ``lora-r16-all``...). ``params()`` are the MLflow params
of the trial: only the fields that the method has (a full-FT run has no rank or targets).
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass

from lfl_ray import config_io
from lfl_ray.errors import ConfigError
from lfl_ray.lora_variants import family_suffixes, variant_params
from lfl_ray.methods import Full, Lora, Method
from lfl_ray.regularization.hiddenkey import HiddenKeyConfig


def targets_label(targets) -> str:
    """'all', 'attention', 'mlp', or module names joined by '+'."""
    return targets if isinstance(targets, str) else "+".join(targets)


@dataclass(frozen=True)
class TrialSpec:
    """What one trial trains: a method value, its learning rate, regularizers and seed."""

    method: Method
    """``Full()`` or ``Lora(rank, alpha, targets, ...)``."""
    lr: float
    """Peak learning rate."""
    seed: int = 0
    """Seed of the data order, dropout and (tiny models) the init."""
    weight_decay: float = 0.0
    """Decoupled weight decay (full FT: on matrices; LoRA: on the adapters)."""
    attention_dropout: float = 0.0
    """Attention-probability dropout (full-FT regularizer)."""
    hidden_dropout: float = 0.0
    """Dropout on hidden representations (full-FT regularizer)."""
    hiddenkey: HiddenKeyConfig | None = None
    """HiddenKey dropout for LoRA (None = off)."""

    @property
    def family(self) -> str:
        """How the analysis groups this trial: full, full+wd, full+dropout, lora-r16-all+dora, ..."""
        if isinstance(self.method, Full):
            parts = ["full"]
            if self.weight_decay > 0:
                parts.append("wd")
            if self.attention_dropout > 0 or self.hidden_dropout > 0:
                parts.append("dropout")
            return "+".join(parts)
        m = self.method
        regularizers = [label for on, label in ((self.hiddenkey, "hiddenkey"), (m.dropout, "dropout"),
                                                (self.weight_decay, "wd")) if on]
        return "+".join([f"lora-r{m.rank}-{targets_label(m.targets)}", *family_suffixes(m), *regularizers])

    @property
    def key(self) -> str:
        """Unique, filesystem-safe name: readable settings plus a hash of every field."""
        # Fields at their defaults are left out of the hash, so a new (off by default) field of a
        # method or trial keeps every existing trial's key, and --resume finds its runs.
        digest = hashlib.sha1(config_io.canonical_json(self, drop_defaults=True).encode()).hexdigest()[:8]
        if isinstance(self.method, Full):
            readable = f"full-lr{self.lr:.3g}"
        else:
            readable = f"lora-r{self.method.rank}-{targets_label(self.method.targets)}-lr{self.lr:.3g}"
        readable = readable.replace("+", "p").replace("/", "_")[:80]
        return f"{readable}-s{self.seed}-{digest}"

    def params(self) -> dict:
        """MLflow params: the method's own settings, the rate and the regularizers that apply."""
        params: dict = {"method": self.method.name, "lr": self.lr, "seed": self.seed,
                        "weight_decay": self.weight_decay}
        if isinstance(self.method, Full):
            params.update(attention_dropout=self.attention_dropout, hidden_dropout=self.hidden_dropout)
            return params
        m = self.method
        params.update(rank=m.rank, alpha=m.effective_alpha, targets=targets_label(m.targets),
                      lora_dropout=m.dropout, hiddenkey=self.hiddenkey is not None)
        params.update(variant_params(m))
        if self.hiddenkey is not None:
            params.update(self.hiddenkey.params())
        return params

    def to_dict(self) -> dict:
        """Plain data (Ray Tune's config, the trial's JSON)."""
        return config_io.to_dict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "TrialSpec":
        return config_io.from_dict(cls, data)

    def validate(self) -> "TrialSpec":
        self.method.validate()
        if self.hiddenkey is not None:
            self.hiddenkey.validate()
        return self


def _alpha(grid, rank: int) -> float:
    return 2.0 * rank if grid.alpha_rule == "2r" else float(grid.fixed_alpha)


def lora_trial(grid, rank, lr, targets, dropout, dora, ratio, weight_decay, hiddenkey, seed) -> TrialSpec:
    """The LoRA trial of one combination of a ``LoraGrid``'s lists."""
    method = Lora(rank=int(rank), alpha=_alpha(grid, rank), targets=targets, dropout=float(dropout),
                  use_rslora=grid.alpha_rule == "rslora", use_dora=bool(dora),
                  loraplus_lr_ratio=None if ratio is None else float(ratio))
    return TrialSpec(method, float(lr), int(seed), float(weight_decay), hiddenkey=hiddenkey)


def grid_trials(spec) -> list[TrialSpec]:
    """Every trial of ``spec``'s grids, full-FT baselines first, in a stable order.

    The same trial listed twice (by two grids, or by a list with a repeated value) is an
    error: silently merging them would run fewer trials than the study declares."""
    trials: list[tuple[str, TrialSpec]] = []
    for seed in spec.seeds:
        for i, grid in enumerate(spec.full):
            for lr, wd, ad, hd in itertools.product(grid.lrs, grid.weight_decays, grid.attention_dropouts,
                                                    grid.hidden_dropouts):
                trials.append((f"full[{i}]", TrialSpec(Full(), float(lr), int(seed), float(wd), float(ad),
                                                       float(hd))))
        for i, grid in enumerate(spec.lora):
            for combo in itertools.product(grid.ranks, grid.lrs, grid.targets, grid.dropouts, grid.use_dora,
                                           grid.loraplus_ratios, grid.weight_decays, grid.hiddenkey):
                trials.append((f"lora[{i}]", lora_trial(grid, *combo, seed)))
    seen: dict[str, str] = {}
    for where, trial in trials:
        if trial.key in seen:
            raise ConfigError(where, trial.key, f"lists a trial that {seen[trial.key]} already lists; "
                              "remove the repeated value (every trial must be distinct)")
        seen[trial.key] = where
    return [t for _, t in trials]
