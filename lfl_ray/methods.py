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

# Target presets by architecture family. Llama, Mistral, Qwen2/3, Gemma and Phi-3-style
# models share these names; GPT-NeoX/GPT-2 style models are listed separately.
TARGET_PRESETS: dict[str, dict[str, tuple[str, ...]]] = {
    "llama": {
        "attention": ("q_proj", "k_proj", "v_proj", "o_proj"),
        "mlp": ("gate_proj", "up_proj", "down_proj"),
    },
    "gpt_neox": {
        "attention": ("query_key_value", "dense"),
        "mlp": ("dense_h_to_4h", "dense_4h_to_h"),
    },
}
for _family in TARGET_PRESETS.values():
    _family["all"] = _family["attention"] + _family["mlp"]
LLAMA_LIKE = {"llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "gemma3_text",
              "phi3", "olmo", "olmo2"}
PRESET_NAMES = ("attention", "mlp", "all")


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
    """'attention' (q,k,v,o), 'mlp' (gate,up,down), 'all', or explicit module names."""
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
    """Distinct leaf names of the model's Linear layers (excluding the LM head)."""
    names = {name.rsplit(".", 1)[-1] for name, mod in model.named_modules()
             if isinstance(mod, torch.nn.Linear)}
    names.discard("lm_head")
    return sorted(names)


def resolve_targets(model: torch.nn.Module, targets) -> list[str]:
    """Module names for a preset or explicit list, checked against the model's linear layers."""
    available = linear_module_names(model)
    if isinstance(targets, str):
        model_type = getattr(getattr(model, "config", None), "model_type", "llama")
        family = "llama" if model_type in LLAMA_LIKE else model_type
        if family not in TARGET_PRESETS:
            raise ConfigError("lora.targets", targets,
                              f"presets are defined for {sorted(LLAMA_LIKE | {'gpt_neox'})}; "
                              f"for model_type {model_type!r} list modules from {available}")
        names = list(TARGET_PRESETS[family][targets])
    else:
        names = list(targets)
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ConfigError("lora.targets", unknown if len(unknown) > 1 else unknown[0],
                          f"must be linear modules of this model: {available}")
    return names


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

    targets = resolve_targets(model, method.targets)
    config = LoraConfig(
        r=method.rank,
        lora_alpha=method.effective_alpha,
        target_modules=targets,
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
