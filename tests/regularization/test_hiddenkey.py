"""HiddenKey on the tiny Llama, plain and LoRA-wrapped: key dropout, hidden dropout, KL loss."""

import pytest
import torch
import torch.nn.functional as F

from lfl_ray.errors import ConfigError
from lfl_ray.methods import Lora, apply_method
from lfl_ray.models import load_model
from lfl_ray.regularization.hiddenkey import (HiddenKeyConfig, bidirectional_kl, enable_hiddenkey,
                                              hiddenkey_loss)

GEN = torch.Generator().manual_seed(0)
IDS = torch.randint(0, 49152, (2, 24), generator=GEN)
OFF = HiddenKeyConfig(key_dropout=0.0, hidden_dropout=0.0, kl_weight=1.0)


def logits(model, ids=IDS, attention_mask=None):
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=attention_mask).logits


def tiny(lora: bool = False, attn: str | None = None):
    model = load_model("tiny-llama")
    if attn:
        model.set_attn_implementation(attn)
    if lora:
        model, _ = apply_method(model, Lora(rank=4))
    return model.train()


def padded_batch():
    ids = torch.randint(0, 49152, (2, 20), generator=torch.Generator().manual_seed(1))
    attention_mask = torch.ones_like(ids)
    attention_mask[1, 14:] = 0  # right padding on the second row
    labels = ids.masked_fill(attention_mask == 0, -100)
    return {"input_ids": ids, "labels": labels, "attention_mask": attention_mask}


@pytest.mark.parametrize("lora", [False, True])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_rates_zero_match_the_unpatched_model_and_undo_restores(lora, attn):
    model = tiny(lora, attn)
    before = logits(model)
    undo = enable_hiddenkey(model, OFF)
    assert model.config._attn_implementation == f"lfl_hiddenkey_{attn}"
    assert torch.equal(logits(model), before)
    undo()
    assert model.config._attn_implementation == attn
    assert not any(hasattr(m, "hiddenkey_key_dropout") for m in model.modules())
    assert torch.equal(logits(model), before)


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_key_dropout_path_matches_eager_attention_when_nothing_drops(attn):
    # A vanishing rate runs the key-dropout code path without dropping anything: it must
    # reproduce ordinary attention, padding included.
    batch = padded_batch()
    reference = tiny(attn="eager")
    model = tiny(attn=attn)
    enable_hiddenkey(model, HiddenKeyConfig(key_dropout=1e-12, hidden_dropout=0.0))
    real = batch["attention_mask"].bool()
    ours = logits(model, batch["input_ids"], batch["attention_mask"])
    theirs = logits(reference, batch["input_ids"], batch["attention_mask"])
    assert torch.allclose(ours[real], theirs[real], atol=1e-5)


def attention_probs(model, ids, attention_mask=None):
    seen = []
    hook = model.model.layers[0].self_attn.register_forward_hook(lambda m, a, out: seen.append(out[1]))
    with torch.no_grad():
        model(input_ids=ids, attention_mask=attention_mask)
    hook.remove()
    return seen[0]


def test_key_dropout_drops_whole_key_columns_and_keeps_causality():
    model = tiny()
    enable_hiddenkey(model, HiddenKeyConfig(key_dropout=0.5, hidden_dropout=0.0))
    ids = torch.randint(0, 49152, (4, 32), generator=GEN)
    probs = attention_probs(model, ids)  # [B, H, Q, K]
    n = ids.shape[1]
    later = torch.ones(n, n, dtype=torch.bool).tril(-1)  # (query i, key j) with i > j
    zeros_per_key = ((probs == 0) & later).sum(-2)
    queries_per_key = later.sum(-2)
    dropped = (zeros_per_key == queries_per_key) & (queries_per_key > 0)
    # Column-wise: a key is either gone for every later query of the head or for none.
    assert torch.all((zeros_per_key == 0) | dropped)
    assert 0.35 < dropped.float().mean().item() < 0.65
    # Heads draw their own columns.
    assert not torch.equal(dropped[:, 0], dropped[:, 1])
    assert torch.all(probs.triu(1) == 0)  # causal
    assert torch.all(probs.diagonal(dim1=-2, dim2=-1) > 0)  # a query keeps its own key
    assert torch.allclose(probs.sum(-1), torch.ones(()), atol=1e-5)  # renormalized, no rescale


def test_key_dropout_respects_padding():
    model = tiny()
    enable_hiddenkey(model, HiddenKeyConfig(key_dropout=0.5, hidden_dropout=0.0))
    batch = padded_batch()
    probs = attention_probs(model, batch["input_ids"], batch["attention_mask"])
    assert torch.all(probs[1, :, :14, 14:] == 0)
    assert torch.allclose(probs[:, :, :14].sum(-1), torch.ones(()), atol=1e-5)
    assert not torch.isnan(probs).any()


def test_dropouts_act_in_train_mode_only():
    model = tiny(lora=True)
    before = logits(model.eval())
    enable_hiddenkey(model, HiddenKeyConfig(key_dropout=0.5, hidden_dropout=0.5))
    assert torch.equal(logits(model.eval()), before)
    assert not torch.allclose(logits(model.train()), before)
    hidden_only = tiny()
    reference = logits(hidden_only)
    enable_hiddenkey(hidden_only, HiddenKeyConfig(key_dropout=0.0, hidden_dropout=0.3))
    assert not torch.allclose(logits(hidden_only), reference)


def test_bidirectional_kl_is_symmetric_and_matches_a_hand_computation():
    a = torch.randn(2, 3, 7, generator=GEN)
    b = torch.randn(2, 3, 7, generator=GEN)
    mask = torch.tensor([[True, False, True], [False, True, True]])
    pa, pb = a.softmax(-1), b.softmax(-1)
    kl_ab = (pa * (pa.log() - pb.log())).sum(-1)
    kl_ba = (pb * (pb.log() - pa.log())).sum(-1)
    by_hand = ((kl_ab + kl_ba) / 2)[mask].mean()
    assert torch.allclose(bidirectional_kl(a, b, mask), by_hand, atol=1e-6)
    assert torch.allclose(bidirectional_kl(b, a, mask), bidirectional_kl(a, b, mask), atol=1e-7)
    assert bidirectional_kl(a, a, mask).item() == 0.0
    assert bidirectional_kl(a, b, torch.zeros_like(mask)).item() == 0.0


def test_kl_is_zero_without_dropout_and_positive_with_it():
    batch = padded_batch()
    model = tiny(lora=True)
    undo = enable_hiddenkey(model, OFF)
    loss, parts = hiddenkey_loss(model, batch, OFF)
    assert parts["kl"].abs().item() < 1e-9
    assert parts["tokens"] == int((batch["labels"][:, 1:] != -100).sum())
    plain = model(**{k: batch[k] for k in ("input_ids", "attention_mask")}).logits
    ce = F.cross_entropy(plain[:, :-1].reshape(-1, plain.shape[-1]), batch["labels"][:, 1:].reshape(-1))
    assert torch.allclose(loss, ce, atol=1e-5) and torch.allclose(parts["ce"], ce, atol=1e-5)
    undo()
    on = HiddenKeyConfig(key_dropout=0.2, hidden_dropout=0.2, kl_weight=2.0)
    enable_hiddenkey(model, on)
    loss, parts = hiddenkey_loss(model, batch, on)
    assert parts["kl"].item() > 1e-4
    assert torch.allclose(loss, parts["ce"] + 2.0 * parts["kl"], atol=1e-5)
    single, parts = hiddenkey_loss(model, batch, HiddenKeyConfig(0.2, 0.2, kl_weight=0.0))
    assert parts["kl"].item() == 0.0 and torch.equal(single.detach(), parts["ce"])


def test_lora_with_hiddenkey_trains():
    model = tiny(lora=True)
    cfg = HiddenKeyConfig(key_dropout=0.1, hidden_dropout=0.1, kl_weight=1.0)
    enable_hiddenkey(model, cfg)
    batch = padded_batch()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    torch.manual_seed(0)
    for _ in range(8):
        loss, _ = hiddenkey_loss(model, batch, cfg)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.3, losses


def test_activation_checkpointing_replays_the_same_dropout_masks():
    cfg = HiddenKeyConfig(key_dropout=0.3, hidden_dropout=0.3, kl_weight=1.0)
    grads = []
    for checkpointing in (False, True):
        model = tiny(lora=True)
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.enable_input_require_grads()
        enable_hiddenkey(model, cfg)
        torch.manual_seed(3)
        loss, _ = hiddenkey_loss(model, padded_batch(), cfg)
        loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.requires_grad]))
    assert grads[0].abs().sum() > 0
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_enable_refuses_other_architectures_and_a_second_enable():
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_embd=16, n_layer=1, n_head=2))
    with pytest.raises(ConfigError) as err:
        enable_hiddenkey(gpt2, HiddenKeyConfig())
    assert err.value.field == "model_type"
    model = tiny()
    enable_hiddenkey(model, HiddenKeyConfig())
    with pytest.raises(ConfigError):
        enable_hiddenkey(model, HiddenKeyConfig())


@pytest.mark.parametrize("field,value", [("key_dropout", 1.0), ("key_dropout", -0.1),
                                         ("hidden_dropout", 1.5), ("hidden_dropout", "0.1"),
                                         ("kl_weight", -1.0), ("kl_weight", float("inf")),
                                         ("kl_weight", None)])
def test_bad_config_values_name_the_field(field, value):
    with pytest.raises(ConfigError) as err:
        HiddenKeyConfig(**{field: value}).validate()
    assert err.value.field == f"hiddenkey.{field}"
    assert HiddenKeyConfig().validate() == HiddenKeyConfig()
