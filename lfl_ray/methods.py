"""Finetuning methods as values: ``Full()`` and ``Lora(rank, alpha, targets, ...)``.

``apply_method(model, method)`` turns one into a trainable model plus a description. LoRA
goes through peft; its variants (rsLoRA, DoRA, LoRA+, ...) are registered values in
``lfl_ray.lora_variants``, which say what each changes in peft's ``LoraConfig`` and in the
optimizer's groups (``lfl_ray.train.optim``), and how it is named and logged.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Union

import torch

from lfl_ray.errors import ConfigError, require_positive
from lfl_ray.lora_variants import peft_kwargs
from lfl_ray.model_config import PRESET_NAMES, layout_of  # presets mean each architecture's own modules


@dataclass(frozen=True)
class Full:
    """Full finetuning: every weight trains."""

    name: str = field(default="full", init=False)

    def validate(self) -> "Full":
        return self


@dataclass(frozen=True)
class Lora:
    """Low-rank adapters on chosen linear modules; base weights stay frozen."""

    rank: int = 16
    """Adapter rank r."""
    alpha: float | None = None
    """Scale numerator; None means the paper's rule alpha = 2r."""
    targets: Union[str, tuple[str, ...]] = "all"
    """'attention' (the linear layers of the attention blocks: q,k,v,o on Llama), 'mlp' (those
    of the MLP blocks: gate,up,down on Llama), 'all' (both), or explicit module names."""
    dropout: float = 0.0
    """peft's lora_dropout on each adapter's input (0 avoids a copy of every input)."""
    use_rslora: bool = False
    """rsLoRA: scale alpha/sqrt(r) instead of alpha/r."""
    use_dora: bool = False
    """DoRA: weight-decomposed adapters."""
    loraplus_lr_ratio: float | None = None
    """LoRA+: learning rate of B = ratio x that of A (None: same rate)."""
    name: str = field(default="lora", init=False)

    @property
    def effective_alpha(self) -> float:
        return float(2 * self.rank if self.alpha is None else self.alpha)

    @property
    def scaling(self) -> float:
        """The multiplier peft applies to B @ A."""
        root = math.sqrt(self.rank) if self.use_rslora else self.rank
        return self.effective_alpha / root

    def validate(self) -> "Lora":
        require_positive("lora.rank", self.rank, integer=True)
        if self.alpha is not None:
            require_positive("lora.alpha", self.alpha)
        if not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            raise ConfigError("lora.dropout", self.dropout, "must be a number in [0, 1)")
        if self.loraplus_lr_ratio is not None:
            require_positive("lora.loraplus_lr_ratio", self.loraplus_lr_ratio)
        if isinstance(self.targets, str):
            if self.targets not in PRESET_NAMES:
                raise ConfigError("lora.targets", self.targets,
                                  f"must be one of {list(PRESET_NAMES)} or a list of module names")
        elif not self.targets or not all(isinstance(t, str) and t for t in self.targets):
            raise ConfigError("lora.targets", self.targets,
                              f"must be one of {list(PRESET_NAMES)} or a non-empty list of module names")
        return self


Method = Union[Full, Lora]


def method_from_dict(data: dict) -> Method:
    """Inverse of ``asdict``-style dicts, as they travel through Ray Tune configs."""
    data = dict(data)
    kind = data.pop("name", data.pop("method", None))
    if kind == "full":
        return Full().validate()
    if kind == "lora":
        if isinstance(data.get("targets"), list):
            data["targets"] = tuple(data["targets"])
        known = {k: v for k, v in data.items() if k in Lora.__dataclass_fields__ and k != "name"}
        return Lora(**known).validate()
    raise ConfigError("method", kind, "must be 'full' or 'lora'")


def method_to_dict(method: Method) -> dict:
    return asdict(method)


def linear_module_names(model: torch.nn.Module) -> list[str]:
    """Distinct leaf names of the decoder's linear layers (not the LM head), in module order."""
    return layout_of(model).names()


def resolve_targets(model: torch.nn.Module, targets) -> list[str]:
    """Module names for a preset or explicit list, checked against the model's linear layers."""
    return list(dict.fromkeys(m.leaf for m in layout_of(model).select(targets)))


@dataclass(frozen=True)
class MethodDescription:
    """What applying a method produced."""

    method: str
    trainable_params: int
    total_params: int
    target_modules: tuple[str, ...] = ()

    @property
    def trainable_fraction(self) -> float:
        return self.trainable_params / max(self.total_params, 1)


def apply_method(model: torch.nn.Module, method: Method):
    """Make ``model`` trainable under ``method``; returns (model, MethodDescription)."""
    method.validate()
    if isinstance(method, Full):
        for param in model.parameters():
            param.requires_grad_(True)
        total = sum(p.numel() for p in model.parameters())
        return model, MethodDescription("full", total, total)

    from peft import LoraConfig, get_peft_model

    layout = layout_of(model)
    chosen = layout.select(method.targets)  # a preset means this architecture's own modules
    targets = list(dict.fromkeys(m.leaf for m in chosen))
    config = LoraConfig(
        r=method.rank,
        lora_alpha=method.effective_alpha,
        target_modules=layout.peft_targets(chosen),  # leaf names, or a path regex where they are ambiguous
        lora_dropout=method.dropout,
        bias="none",
        task_type="CAUSAL_LM",
        **peft_kwargs(method),  # what the variants that are on change (lfl_ray.lora_variants)
    )
    peft_model = get_peft_model(model, config)
    trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    # peft's totals include adapters; "fraction of the model" reads better against the base.
    total = sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" not in n)
    return peft_model, MethodDescription("lora", trainable, total, tuple(targets))
