"""The registry of LoRA variants: each is one ``LoraVariant`` value in ``LORA_VARIANTS``.

| variant  | on when                    | peft LoraConfig   | optimizer groups       | MLflow params       |
|----------|----------------------------|-------------------|------------------------|---------------------|
| rslora   | ``Lora.use_rslora``        | ``use_rslora``    | -                      | ``use_rslora``      |
| dora     | ``Lora.use_dora``          | ``use_dora``      | -                      | ``use_dora``        |
| loraplus | ``Lora.loraplus_lr_ratio`` | -                 | ``lora_B`` rate x ratio | ``loraplus_lr_ratio`` (when set) |

``apply_method`` builds plain LoRA's ``LoraConfig`` and adds what each variant that is on
sets (``peft_kwargs``); ``lfl_ray.train.optim.param_groups`` gives a parameter its own
group at a scaled rate where a variant that is on asks for it (``lr_scales``); a variant's
name is its family suffix (``lora-r16-all+dora``, ``family_suffixes``); its ``params`` are
logged for every LoRA trial, so "off" is recorded too (``variant_params``).

HiddenKey is not a variant here: it changes a trial's attention and loss, not the adapters
or the optimizer, and its settings live beside the method (``TrialSpec.hiddenkey``,
``lfl_ray.regularization.hiddenkey``).

How to add a variant: give ``Lora`` (``lfl_ray.methods``) a field that is off by default,
then register one value that reads it, e.g. PiSSA's SVD initialisation:

    register_lora_variant(LoraVariant(
        "pissa", "PiSSA: adapters initialised from the top singular vectors",
        active=lambda lora: lora.use_pissa,
        peft_config=lambda lora: {"init_lora_weights": "pissa"},
        params=lambda lora: {"use_pissa": lora.use_pissa}))

Register a shipped variant at the bottom of this module: ``apply_method`` and the optimizer
run in the Ray Train workers, which import this module but not a driver script, so a
variant registered only in ``__main__`` would be off there. The order of registration is
the order of the family suffixes. A sweep reaches a new field through ``LoraGrid`` and
``lora_trial`` in ``lfl_ray.sweep`` (one list and one argument). Prefer what peft already
implements (a ``LoraConfig`` option) over code of our own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Optional

from lfl_ray.errors import ConfigError

# The functions take a ``Lora`` value (lfl_ray.methods). It is not imported here: methods.py
# reads this registry in apply_method, and the two modules must not need each other.

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,29}")


@dataclass(frozen=True)
class LoraVariant:
    """One way a LoRA trial differs from plain LoRA: what it changes, how it is named and logged."""

    name: str
    """Registry key and family suffix (``lora-r16-all+<name>``)."""
    description: str
    """One line for the docs."""
    active: Callable[..., bool]
    """``active(lora) -> bool``: whether a ``Lora`` value uses this variant."""
    peft_config: Optional[Callable[..., dict]] = None
    """``peft_config(lora) -> dict``: keyword arguments set on peft's ``LoraConfig`` when on."""
    lr_scale: Optional[Callable[..., Optional[float]]] = None
    """``lr_scale(lora, param_name) -> factor or None``: when on, a trainable parameter's rate is
    multiplied by the factor, in a group of its own (None: the parameter is not touched)."""
    params: Optional[Callable[..., dict]] = None
    """``params(lora) -> dict``: MLflow params, asked of every LoRA trial (on or off)."""

    def validate(self) -> "LoraVariant":
        """Return self, or raise ConfigError naming the first bad field."""
        if not isinstance(self.name, str) or not NAME_PATTERN.fullmatch(self.name):
            raise ConfigError("lora_variant.name", self.name,
                              "must be 1-30 lowercase letters, digits or '_', starting with a letter")
        if not isinstance(self.description, str) or not self.description.strip():
            raise ConfigError("lora_variant.description", self.description, "must be a non-empty line")
        for field_name in ("active", "peft_config", "lr_scale", "params"):
            value = getattr(self, field_name)
            if (value is not None or field_name == "active") and not callable(value):
                raise ConfigError(f"lora_variant.{field_name}", value, "must be a function"
                                  + ("" if field_name == "active" else " or None"))
        return self


LORA_VARIANTS: dict[str, LoraVariant] = {}
"""Every registered variant by name, in registration order (read it, register with
``register_lora_variant``)."""


def register_lora_variant(variant: LoraVariant, *, replace: bool = False) -> LoraVariant:
    """Add ``variant`` to LORA_VARIANTS (after validating it) and return it; a name already
    registered is refused unless ``replace``."""
    variant.validate()
    if variant.name in LORA_VARIANTS and not replace:
        raise ConfigError("lora_variant.name", variant.name,
                          "is already registered (pass replace=True to redefine it)")
    LORA_VARIANTS[variant.name] = variant
    return variant


def active_variants(lora) -> list[LoraVariant]:
    """The registered variants that ``lora`` uses, in registration order."""
    return [v for v in LORA_VARIANTS.values() if v.active(lora)]


def peft_kwargs(lora) -> dict:
    """What the variants that are on set on peft's ``LoraConfig``; two that disagree on one
    option are an error (neither silently wins)."""
    kwargs: dict = {}
    owner: dict[str, str] = {}
    for variant in active_variants(lora):
        for key, value in (variant.peft_config(lora) if variant.peft_config else {}).items():
            if key in kwargs and kwargs[key] != value:
                raise ConfigError("lora", f"{owner[key]}+{variant.name}",
                                  f"cannot be combined: both set LoraConfig.{key} ({kwargs[key]!r} vs {value!r})")
            kwargs[key], owner[key] = value, variant.name
    return kwargs


def lr_scales(lora, param_name: str, variants: list[LoraVariant] | None = None) -> tuple[tuple[str, float], ...]:
    """(variant, factor) for each variant that is on and scales ``param_name``'s rate;
    ``variants``: ``active_variants(lora)`` computed once by the caller."""
    scales = []
    for variant in active_variants(lora) if variants is None else variants:
        factor = variant.lr_scale(lora, param_name) if variant.lr_scale else None
        if factor is not None:
            scales.append((variant.name, factor))
    return tuple(scales)


def family_suffixes(lora) -> list[str]:
    """The names of the variants that are on: the family suffixes, in registration order."""
    return [v.name for v in active_variants(lora)]


def variant_params(lora) -> dict:
    """The MLflow params of every registered variant for ``lora`` (on or off)."""
    params: dict = {}
    for variant in LORA_VARIANTS.values():
        if variant.params:
            params.update(variant.params(lora))
    return params


register_lora_variant(LoraVariant(
    "rslora", "rank-stabilised LoRA: scale alpha/sqrt(r) instead of alpha/r (peft use_rslora)",
    active=lambda lora: bool(lora.use_rslora),
    peft_config=lambda lora: {"use_rslora": True},
    params=lambda lora: {"use_rslora": lora.use_rslora}))
register_lora_variant(LoraVariant(
    "dora", "DoRA: weight-decomposed adapters, magnitude and direction (peft use_dora)",
    active=lambda lora: bool(lora.use_dora),
    peft_config=lambda lora: {"use_dora": True},
    params=lambda lora: {"use_dora": lora.use_dora}))
register_lora_variant(LoraVariant(
    "loraplus", "LoRA+: each adapter's B matrix trains at ratio x the rate of A",
    active=lambda lora: bool(lora.loraplus_lr_ratio),
    lr_scale=lambda lora, name: lora.loraplus_lr_ratio if "lora_B" in name else None,
    params=lambda lora: ({} if lora.loraplus_lr_ratio is None else {"loraplus_lr_ratio": lora.loraplus_lr_ratio})))
