"""Attention and hidden dropout for full finetuning, on the tiny Llama and a tiny GPT-2."""

import pytest
import torch

from lfl_ray.errors import ConfigError
from lfl_ray.models import load_model
from lfl_ray.regularization.dropout import apply_model_dropout

IDS = torch.randint(0, 49152, (2, 24), generator=torch.Generator().manual_seed(0))


def logits(model, ids=IDS):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_rate_zero_is_a_no_op_without_hooks():
    model = load_model("tiny-llama").train()
    before = logits(model)
    info = apply_model_dropout(model, 0.0, 0.0)
    assert info["handles"] == []
    assert info["attention_dropout"] == 0.0 and info["hidden_dropout"] == 0.0
    assert all(not layer.self_attn._forward_hooks and not layer.mlp._forward_hooks
               for layer in model.model.layers)
    assert torch.equal(logits(model), before)


def test_attention_dropout_reaches_every_attention_module_and_undoes():
    model = load_model("tiny-llama").train()
    before = logits(model)
    info = apply_model_dropout(model, 0.3, 0.0)
    assert info["model_type"] == "llama" and info["handles"] == []
    assert all(layer.self_attn.attention_dropout == 0.3 for layer in model.model.layers)
    assert model.config.attention_dropout == 0.3
    assert not torch.allclose(logits(model), before)
    assert torch.equal(logits(model.eval()), logits(load_model("tiny-llama").eval()))
    info["undo"]()
    assert all(layer.self_attn.attention_dropout == 0.0 for layer in model.model.layers)
    assert torch.equal(logits(model.train()), before)


def test_hidden_dropout_zeroes_sublayer_outputs_in_train_mode_only():
    model = load_model("tiny-llama").train()
    reference = load_model("tiny-llama").eval()
    info = apply_model_dropout(model, 0.0, 0.5)
    assert len(info["handles"]) == 2 * len(model.model.layers)
    seen = []
    capture = model.model.layers[0].mlp.register_forward_hook(lambda m, a, out: seen.append(out))
    train_out = logits(model)
    zero_fraction = (seen[0] == 0).float().mean().item()
    assert 0.4 < zero_fraction < 0.6  # element-wise at rate 0.5
    assert not torch.allclose(train_out, logits(reference))
    assert torch.equal(logits(model.eval()), logits(reference))
    capture.remove()
    info["undo"]()
    assert torch.equal(logits(model.train()), logits(reference))


def tiny_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(vocab_size=128, n_positions=64, n_embd=32, n_layer=2,
                                      n_head=2, attn_pdrop=0.0, resid_pdrop=0.0, embd_pdrop=0.0))


def test_gpt2_uses_its_native_dropouts():
    model = tiny_gpt2().train()
    ids = IDS % 128
    before = logits(model, ids)
    info = apply_model_dropout(model, 0.0, 0.0)
    assert torch.equal(logits(model, ids), before)
    info = apply_model_dropout(model, 0.2, 0.4)
    assert info["handles"] == [] and "resid_pdrop" in info["hidden_dropout_via"]
    block = model.transformer.h[1]
    assert (block.attn.attn_dropout.p, block.attn.resid_dropout.p, block.mlp.dropout.p) == (0.2, 0.4, 0.4)
    assert not torch.allclose(logits(model, ids), before)
    info["undo"]()
    assert block.attn.attn_dropout.p == 0.0 and model.config.resid_pdrop == 0.0
    assert torch.equal(logits(model, ids), before)


def test_unsupported_architecture_fails_only_when_asked_for_dropout():
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    model = GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=128, hidden_size=32, num_hidden_layers=1,
                                             num_attention_heads=2, intermediate_size=64))
    assert apply_model_dropout(model, 0.0, 0.0)["handles"] == []
    with pytest.raises(ConfigError) as err:
        apply_model_dropout(model, 0.1, 0.0)
    assert err.value.field == "model_type" and "llama" in str(err.value) and "gpt2" in str(err.value)


@pytest.mark.parametrize("field,args", [("attention_dropout", (1.0, 0.0)),
                                        ("attention_dropout", (-0.1, 0.0)),
                                        ("hidden_dropout", (0.0, "0.1")),
                                        ("hidden_dropout", (0.0, True))])
def test_bad_rates_name_the_field(field, args):
    with pytest.raises(ConfigError) as err:
        apply_model_dropout(load_model("tiny-llama"), *args)
    assert err.value.field == field
