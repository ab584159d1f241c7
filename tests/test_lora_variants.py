"""The LoRA variant registry: the shipped variants as before, and a new one is one registration."""

from __future__ import annotations

import itertools
import math

import pytest

from lfl_ray.errors import ConfigError
from lfl_ray.lora_variants import (LORA_VARIANTS, LoraVariant, family_suffixes, peft_kwargs,
                                   register_lora_variant, variant_params)
from lfl_ray.methods import Full, Lora, apply_method
from lfl_ray.models import load_model
from lfl_ray.train.optim import param_groups

TOY = LoraVariant(
    "lorabias", "toy: a trainable bias on each B, A at half the rate (on for every Lora while registered)",
    active=lambda lora: True,
    peft_config=lambda lora: {"lora_bias": True},
    lr_scale=lambda lora, name: 0.5 if "lora_A" in name else None,
    params=lambda lora: {"lora_bias": True})


@pytest.fixture
def cleanup():
    """Whatever a test registers under the toy names is removed again after it."""
    yield
    for name in ("lorabias", "nodora"):
        LORA_VARIANTS.pop(name, None)


def test_the_shipped_variants_in_family_order():
    assert list(LORA_VARIANTS) == ["rslora", "dora", "loraplus"]
    for variant in LORA_VARIANTS.values():
        assert variant.validate().description


@pytest.mark.parametrize("rslora, dora, ratio", list(itertools.product((False, True), (False, True), (None, 16.0))))
def test_registry_gives_the_family_and_params_that_trials_use(rslora, dora, ratio):
    """Pins the registry to what TrialSpec spells by hand today, so wiring it in changes nothing."""
    from lfl_ray.sweep.trials import TrialSpec

    lora = Lora(rank=16, use_rslora=rslora, use_dora=dora, loraplus_lr_ratio=ratio)
    trial = TrialSpec(lora, 1e-3)
    assert trial.family == "lora-r16-all" + "".join(f"+{s}" for s in family_suffixes(lora))
    params = trial.params()
    assert {k: params[k] for k in variant_params(lora)} == variant_params(lora)
    assert ("loraplus_lr_ratio" in params) == ("loraplus_lr_ratio" in variant_params(lora))
    assert peft_kwargs(lora) == {k: True for k, on in (("use_rslora", rslora), ("use_dora", dora)) if on}


def test_loraplus_through_the_method_equals_the_ratio_shorthand():
    model, _ = apply_method(load_model("tiny-llama"), Lora(rank=4))
    by_method = param_groups(model, 1e-4, 0.1, method=Lora(rank=4, loraplus_lr_ratio=16))
    by_ratio = param_groups(model, 1e-4, 0.1, loraplus_lr_ratio=16)
    assert [(g["names"], g["lr"], g["weight_decay"]) for g in by_method] == \
           [(g["names"], g["lr"], g["weight_decay"]) for g in by_ratio]
    assert len(by_method) == 2  # decayed A, decayed B at 16x (the tiny model's adapters have no 1-d params)
    assert param_groups(model, 1e-4, 0.1, method=Full()) == param_groups(model, 1e-4, 0.1)
    with pytest.raises(TypeError):
        param_groups(model, 1e-4, 0.1, 16, method=Lora(rank=4))


def test_a_toy_variant_is_one_registration(cleanup):
    plain, _ = apply_method(load_model("tiny-llama"), Lora(rank=4))
    assert plain.peft_config["default"].lora_bias is False

    register_lora_variant(TOY)  # the one call

    lora = Lora(rank=4)
    model, desc = apply_method(load_model("tiny-llama"), lora)
    assert model.peft_config["default"].lora_bias is True
    biases = [n for n, p in model.named_parameters() if "lora_B" in n and n.endswith(".bias")]
    assert biases and all(p.requires_grad for n, p in model.named_parameters() if n in biases)
    assert desc.trainable_params > sum(p.numel() for n, p in plain.named_parameters() if p.requires_grad)
    for group in param_groups(model, 1e-3, 0.0, method=lora):
        a_side = {"lora_A" in n for n in group["names"]}
        assert len(a_side) == 1
        assert math.isclose(group["lr"], 5e-4 if a_side == {True} else 1e-3)
    assert family_suffixes(lora) == ["lorabias"]
    assert family_suffixes(Lora(rank=4, use_dora=True)) == ["dora", "lorabias"]
    assert variant_params(lora) == {"use_rslora": False, "use_dora": False, "lora_bias": True}


def test_two_variants_that_disagree_on_an_option_are_an_error(cleanup):
    register_lora_variant(LoraVariant("nodora", "sets use_dora off", active=lambda lora: True,
                                      peft_config=lambda lora: {"use_dora": False}))
    assert peft_kwargs(Lora(rank=4)) == {"use_dora": False}
    with pytest.raises(ConfigError) as err:
        peft_kwargs(Lora(rank=4, use_dora=True))
    assert "dora+nodora" in str(err.value) and "use_dora" in str(err.value)


def test_registering_a_name_twice_is_refused_unless_replaced(cleanup):
    register_lora_variant(TOY)
    with pytest.raises(ConfigError) as err:
        register_lora_variant(TOY)
    assert err.value.field == "lora_variant.name"
    assert register_lora_variant(TOY, replace=True) is LORA_VARIANTS["lorabias"]


@pytest.mark.parametrize("change, field", [
    (dict(name="Lora Bias"), "lora_variant.name"), (dict(description=" "), "lora_variant.description"),
    (dict(active=None), "lora_variant.active"), (dict(peft_config={"lora_bias": True}), "lora_variant.peft_config"),
])
def test_a_bad_variant_names_its_field(cleanup, change, field):
    from dataclasses import replace

    with pytest.raises(ConfigError) as err:
        register_lora_variant(replace(TOY, **change))
    assert err.value.field == field
    assert "lorabias" not in LORA_VARIANTS
