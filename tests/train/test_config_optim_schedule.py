"""Trial config validation, optimizer groups (weight decay rule, LoRA+), LR schedules."""

from __future__ import annotations

import math

import pytest
import torch

from lfl_ray.errors import ConfigError
from lfl_ray.methods import Full, Lora, apply_method
from lfl_ray.models import load_model
from lfl_ray.train.config import Budget, Resources, TrialConfig
from lfl_ray.train.optim import build_optimizer, param_groups
from lfl_ray.train.schedule import inverse_sqrt, warmup_cosine


def _budget(**kw):
    return Budget(**{"steps": 20, "milestones": (), **kw})


@pytest.mark.parametrize("changes,field", [
    ({"lr": -1e-4}, "lr"), ({"lr": 0}, "lr"), ({"lr": float("nan")}, "lr"), ({"lr": "fast"}, "lr"),
    ({"optimizer": "sgd"}, "optimizer"), ({"budget": _budget(schedule="step")}, "budget.schedule"),
    ({"budget": _budget(steps=0)}, "budget.steps"), ({"budget": _budget(milestones=(5, 50))}, "budget.milestones"),
    ({"budget": _budget(global_batch_size=6, micro_batch_size=4)}, "budget.global_batch_size"),
    ({"resources": Resources(backend="fsdp")}, "resources.backend"),
    ({"resources": Resources(backend="deepspeed", zero_stage=1)}, "resources.zero_stage"),
    ({"weight_decay": -0.1}, "weight_decay"), ({"hidden_dropout": 1.0}, "hidden_dropout"),
    ({"method": Lora(rank=0)}, "lora.rank"),
])
def test_bad_trial_values_name_field_value_and_allowed(changes, field):
    cfg = TrialConfig(budget=_budget(), resources=Resources(num_workers=1)).with_(**changes)
    with pytest.raises(ConfigError) as err:
        cfg.validate()
    assert err.value.field == field
    assert "got" in str(err.value) and ("must" in str(err.value))


def test_grad_accum_and_eval_steps():
    cfg = TrialConfig(budget=Budget(micro_batch_size=2, global_batch_size=8, steps=30, milestones=(10, 20)),
                      resources=Resources(num_workers=2)).validate()
    assert cfg.grad_accum == 2
    assert cfg.eval_steps == (10, 20, 30)


def test_weight_decay_skips_biases_and_norms():
    model, _ = apply_method(load_model("tiny-llama"), Full())
    groups = param_groups(model, 1e-3, 0.1)
    decayed = [n for g in groups if g["weight_decay"] > 0 for n in g["names"]]
    plain = [n for g in groups if g["weight_decay"] == 0 for n in g["names"]]
    assert any("norm" in n for n in plain) and not any("norm" in n for n in decayed)
    assert any(n.endswith("up_proj.weight") for n in decayed)
    assert len(decayed) + len(plain) == sum(1 for p in model.parameters() if p.requires_grad)


def test_loraplus_gives_b_a_larger_rate():
    model, _ = apply_method(load_model("tiny-llama"), Lora(rank=4))
    groups = param_groups(model, 1e-4, 0.0, loraplus_lr_ratio=16)
    for g in groups:
        kinds = {("lora_B" in n) for n in g["names"]}
        assert len(kinds) == 1
        assert math.isclose(g["lr"], 1.6e-3 if kinds == {True} else 1e-4)


@pytest.mark.parametrize("name", ["adamw", "lion"])
def test_optimizers_build(name):
    model, _ = apply_method(load_model("tiny-llama"), Lora(rank=4))
    opt = build_optimizer(model, name, 1e-3, 0.01)
    assert sum(len(g["params"]) for g in opt.param_groups) == sum(1 for p in model.parameters() if p.requires_grad)


def test_fused_adamw_takes_the_same_steps_as_the_default():
    """The DDP path's fused kernel is a speed-up only: same groups, same updates."""
    torch.manual_seed(0)
    models = [apply_method(load_model("tiny-llama", seed=0), Lora(rank=4))[0] for _ in range(2)]
    opts = [build_optimizer(m, "adamw", 1e-2, 0.1, fused=f) for m, f in zip(models, (False, True))]
    assert opts[1].defaults["fused"] and not opts[0].defaults["fused"]
    ids = torch.randint(0, 1000, (2, 16))
    for _ in range(3):
        for model, opt in zip(models, opts):
            model(input_ids=ids, labels=ids).loss.backward()
            opt.step()
            opt.zero_grad()
    for (name, a), b in zip(models[0].named_parameters(), models[1].parameters()):
        if a.requires_grad:
            assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), name
    assert any(p.requires_grad and "lora_B" in n and p.abs().sum() > 0 for n, p in models[1].named_parameters())


def test_cosine_warms_up_then_decays_to_floor():
    values = [warmup_cosine(s, 100, 10, 0.01) for s in range(100)]
    assert values[0] == pytest.approx(0.1) and values[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(values[9:], values[10:]))
    assert warmup_cosine(100, 100, 10, 0.01) == pytest.approx(0.01)


def test_inverse_sqrt_with_cooldown():
    assert inverse_sqrt(99, 1000, 100) == pytest.approx(1.0)
    assert inverse_sqrt(399, 1000, 100) == pytest.approx(0.5)
    assert inverse_sqrt(999, 1000, 100, cooldown=100) < 0.01 * inverse_sqrt(899, 1000, 100)
