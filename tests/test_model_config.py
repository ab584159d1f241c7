"""Target presets per architecture, from configs alone: what `attention`, `mlp` and `all` mean
for Llama, Mistral, Qwen2/3, Gemma 2/3, Phi-3 and GPT-NeoX, and that a trial adapts exactly that."""

from __future__ import annotations

import pytest
import torch

from lfl_ray.errors import ConfigError
from lfl_ray.methods import Lora, apply_method
from lfl_ray.model_config import layout, layout_of, load_config, parameter_count, preset_targets

SMALL = dict(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
             num_key_value_heads=1, max_position_embeddings=128)
LLAMA_NAMES = (["q_proj", "k_proj", "v_proj", "o_proj"], ["gate_proj", "up_proj", "down_proj"])

# model_type -> (extra config values, attention modules, MLP modules)
ARCHITECTURES = {
    "llama": ({}, *LLAMA_NAMES),
    "mistral": ({}, *LLAMA_NAMES),
    "qwen2": ({}, *LLAMA_NAMES),
    "qwen3": ({"head_dim": 16}, *LLAMA_NAMES),
    "gemma2": ({"head_dim": 16}, *LLAMA_NAMES),
    "gemma3_text": ({"head_dim": 16, "sliding_window": 32}, *LLAMA_NAMES),
    "phi3": ({"pad_token_id": 0}, ["qkv_proj", "o_proj"], ["gate_up_proj", "down_proj"]),
    "gpt_neox": ({}, ["query_key_value", "dense"], ["dense_h_to_4h", "dense_4h_to_h"]),
}


def tiny_config(model_type: str):
    """A two-layer config of ``model_type`` (built here, nothing downloaded)."""
    from transformers import AutoConfig

    extra = ARCHITECTURES[model_type][0]
    values = {k: v for k, v in {**SMALL, **extra}.items()}
    if model_type == "gpt_neox":
        values.pop("num_key_value_heads")
    return AutoConfig.for_model(model_type, **values)


def _adapted(model) -> set[str]:
    """Leaf names of the modules peft put adapters on."""
    return {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if hasattr(module, "lora_A")}


@pytest.mark.parametrize("model_type", sorted(ARCHITECTURES))
def test_presets_resolve_to_the_architectures_own_modules(model_type):
    from transformers import AutoModelForCausalLM

    _, attention, mlp = ARCHITECTURES[model_type]
    config = tiny_config(model_type)
    # From the config alone (the meta device)...
    assert sorted(preset_targets(config, "attention")) == sorted(attention)
    assert sorted(preset_targets(config, "mlp")) == sorted(mlp)
    assert sorted(preset_targets(config, "all")) == sorted(attention + mlp)
    # ...and it agrees with peft's own per-architecture default (a subset of the attention preset).
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as PEFT_DEFAULTS

    if model_type in PEFT_DEFAULTS:
        assert set(PEFT_DEFAULTS[model_type]) <= set(attention), PEFT_DEFAULTS[model_type]
    # A trial of a real (random) model of that config adapts exactly those modules.
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    assert layout_of(model).names() == layout(config).names()
    for preset, expected in (("attention", attention), ("mlp", mlp), ("all", attention + mlp)):
        peft_model, description = apply_method(AutoModelForCausalLM.from_config(config), Lora(rank=2, targets=preset))
        assert _adapted(peft_model) == set(expected), preset
        assert sorted(description.target_modules) == sorted(expected)
    assert "lm_head" not in layout(config).names() and "embed_out" not in layout(config).names()


def test_a_vision_towers_modules_are_not_the_language_models():
    """Gemma 3 with its vision tower: q_proj there is not a target; peft gets a path regex."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.for_model(
        "gemma3", text_config={**SMALL, "head_dim": 16, "sliding_window": 32},
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=28, patch_size=14), mm_tokens_per_image=4)
    tree = layout(config)
    assert sorted(tree.names("attention")) == sorted(LLAMA_NAMES[0]) and tree.outside  # vision q_proj, fc1...
    targets = tree.peft_targets(tree.select("attention"))
    assert isinstance(targets, str) and "language_model" in targets
    model, _ = apply_method(AutoModelForCausalLM.from_config(config), Lora(rank=2, targets="attention"))
    adapted = [n for n, m in model.named_modules() if hasattr(m, "lora_A")]
    assert adapted and all("language_model" in n for n in adapted)
    assert len(adapted) == 2 * 4  # 2 layers x q, k, v, o


def test_gpt2_shared_leaf_names_adapt_only_the_blocks_asked_for():
    """GPT-2 names the attention and MLP output both ``c_proj``: 'attention' must not adapt the MLP's."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(vocab_size=256, n_embd=32, n_layer=2, n_head=2, n_positions=64)
    assert sorted(preset_targets(config, "attention")) == ["c_attn", "c_proj"]
    assert sorted(preset_targets(config, "mlp")) == ["c_fc", "c_proj"]
    model, _ = apply_method(GPT2LMHeadModel(config), Lora(rank=2, targets="attention"))
    adapted = sorted(n.split("h.", 1)[1] for n, m in model.named_modules() if hasattr(m, "lora_A"))
    assert adapted == ["0.attn.c_attn", "0.attn.c_proj", "1.attn.c_attn", "1.attn.c_proj"]


def test_unknown_explicit_module_names_the_value_and_lists_the_models_modules():
    config = tiny_config("phi3")
    with pytest.raises(ConfigError) as err:
        layout(config).select(("q_proj", "o_proj"), field="lora[0].targets")
    message = str(err.value)
    assert err.value.field == "lora[0].targets" and "got 'q_proj'" in message
    for name in ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"):
        assert name in message
    assert [m.leaf for m in layout(config).select(("self_attn.o_proj",))] == ["o_proj", "o_proj"]  # peft's suffix rule


def test_a_preset_with_no_module_says_so():
    from transformers import AutoConfig

    config = AutoConfig.for_model("mixtral", **SMALL, num_local_experts=2, num_experts_per_tok=1)
    with pytest.raises(ConfigError) as err:
        preset_targets(config, "mlp")  # the experts are fused parameters, not linear layers
    assert "matches no linear module" in str(err.value) and "q_proj" in str(err.value)


@pytest.mark.parametrize("tied", [True, False])
def test_parameter_counts_match_a_real_model(tied):
    from transformers import AutoModelForCausalLM

    config = tiny_config("qwen3")
    config.tie_word_embeddings = tied
    model = AutoModelForCausalLM.from_config(config)
    real = sum(p.numel() for p in model.parameters())
    embed = model.get_input_embeddings().weight.numel()
    assert parameter_count(config) == real
    assert layout(config).matmul_params == (real if tied else real - embed)  # a lookup is not a matmul


def test_local_folder_config_and_a_folder_without_one(tmp_path):
    tiny_config("gpt_neox").save_pretrained(tmp_path / "m")
    assert load_config(str(tmp_path / "m")).model_type == "gpt_neox"
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError) as err:
        load_config(str(tmp_path / "empty"))
    assert err.value.field == "model" and "config.json" in str(err.value)
