"""Methods as values: LoRA freezes the base bit-for-bit, reaches peft's config, counts right."""

from __future__ import annotations

import math

import pytest
import torch

from lfl_ray.errors import ConfigError
from lfl_ray.methods import Full, Lora, apply_method, linear_module_names, method_from_dict, method_to_dict
from lfl_ray.models import TINY_LLAMA_CONFIG, load_model


def _step(model, steps=3, lr=1e-2):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    ids = torch.randint(0, 1000, (2, 16), generator=torch.Generator().manual_seed(1))
    for _ in range(steps):
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad()


def test_lora_keeps_base_weights_bit_identical():
    base = {k: v.clone() for k, v in load_model("tiny-llama").state_dict().items()}
    model, _ = apply_method(load_model("tiny-llama"), Lora(rank=4))
    _step(model)
    merged_names = 0
    for name, tensor in model.get_base_model().state_dict().items():
        if "lora_" in name:
            continue
        key = name.replace(".base_layer", "")
        assert torch.equal(tensor, base[key]), key
        merged_names += 1
    assert merged_names == len(base)


def test_full_updates_base_weights():
    before = load_model("tiny-llama").state_dict()["model.layers.0.mlp.up_proj.weight"].clone()
    model, desc = apply_method(load_model("tiny-llama"), Full())
    _step(model)
    assert desc.trainable_fraction == 1.0
    assert not torch.equal(model.state_dict()["model.layers.0.mlp.up_proj.weight"], before)


@pytest.mark.parametrize("targets,modules", [
    ("attention", ["q_proj", "k_proj", "v_proj", "o_proj"]),
    ("mlp", ["gate_proj", "up_proj", "down_proj"]),
    ("all", ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]),
    (("q_proj", "v_proj"), ["q_proj", "v_proj"]),
])
def test_lora_trainable_count_matches_shapes(targets, modules):
    rank = 4
    model, desc = apply_method(load_model("tiny-llama"), Lora(rank=rank, targets=targets))
    c = TINY_LLAMA_CONFIG
    head = c["hidden_size"] // c["num_attention_heads"]
    shapes = {"q_proj": (c["hidden_size"], c["hidden_size"]),
              "k_proj": (c["hidden_size"], c["num_key_value_heads"] * head),
              "v_proj": (c["hidden_size"], c["num_key_value_heads"] * head),
              "o_proj": (c["hidden_size"], c["hidden_size"]),
              "gate_proj": (c["hidden_size"], c["intermediate_size"]),
              "up_proj": (c["hidden_size"], c["intermediate_size"]),
              "down_proj": (c["intermediate_size"], c["hidden_size"])}
    expected = c["num_hidden_layers"] * sum(rank * (shapes[m][0] + shapes[m][1]) for m in modules)
    assert desc.trainable_params == expected
    assert sorted(desc.target_modules) == sorted(modules)
    assert 0 < desc.trainable_fraction < 0.05


def test_lora_options_reach_peft_config():
    model, _ = apply_method(load_model("tiny-llama"), Lora(rank=8, alpha=4, targets="mlp", dropout=0.1,
                                                           use_rslora=True, use_dora=True))
    cfg = model.peft_config["default"]
    assert (cfg.r, cfg.lora_alpha, cfg.lora_dropout, cfg.use_rslora, cfg.use_dora) == (8, 4, 0.1, True, True)
    assert set(cfg.target_modules) == {"gate_proj", "up_proj", "down_proj"}
    layer = model.base_model.model.model.layers[0].mlp.up_proj
    assert math.isclose(layer.scaling["default"], 4 / math.sqrt(8))  # rsLoRA: alpha / sqrt(r)


def test_alpha_defaults_to_twice_the_rank():
    assert Lora(rank=16).effective_alpha == 32
    model, _ = apply_method(load_model("tiny-llama"), Lora(rank=16))
    assert model.peft_config["default"].lora_alpha == 32


def test_method_round_trips_through_dict():
    lora = Lora(rank=4, targets=("q_proj",), use_dora=True)
    assert method_from_dict(method_to_dict(lora)) == lora
    assert method_from_dict(method_to_dict(Full())) == Full()


@pytest.mark.parametrize("method,field", [
    (Lora(rank=0), "lora.rank"), (Lora(rank=-2), "lora.rank"), (Lora(rank=4, alpha=0), "lora.alpha"),
    (Lora(rank=4, targets="everything"), "lora.targets"), (Lora(rank=4, dropout=1.5), "lora.dropout"),
])
def test_bad_lora_values_name_the_field(method, field):
    with pytest.raises(ConfigError) as err:
        method.validate()
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: got ") and "must" in str(err.value)


def test_unknown_target_module_lists_real_modules():
    model = load_model("tiny-llama")
    with pytest.raises(ConfigError) as err:
        apply_method(model, Lora(rank=4, targets=("q_proj", "query")))
    message = str(err.value)
    assert "lora.targets" in message and "'query'" in message
    for name in linear_module_names(model):
        assert name in message
