"""HiddenKey (Wang et al. 2024, "LoRA Meets Dropout under a Unified Framework").

HiddenKey regularizes LoRA training with three parts:

1. **Key dropout** (column-wise DropKey): before the softmax, each head of each sequence
   drops whole key columns: a dropped key gets logit -inf for every query, so the softmax
   renormalizes over the kept keys (that is the compensation: no 1/(1-p) rescale). A query
   never loses its own position (the diagonal is exempt), so every row keeps at least one
   key; the causal and padding masks apply as usual.
2. **Hidden dropout**: element-wise dropout on each attention and MLP output before the
   residual add (the hooks of :mod:`lfl_ray.regularization.dropout`).
3. **Bidirectional KL consistency**: two passes with different dropout masks;
   ``loss = (CE1 + CE2) / 2 + kl_weight * (KL(p1||p2) + KL(p2||p1)) / 2`` over the
   positions that carry a label.

Cost: ``hiddenkey_loss`` runs the batch twice (one forward over the batch stacked on
itself, so DDP and DeepSpeed see one forward call): about twice the compute and
activation memory of a plain step. With ``kl_weight == 0`` it runs once.

Key dropout is an attention function registered with transformers'
``AttentionInterface`` and switched on per model by ``enable_hiddenkey`` (Llama, Mistral,
Qwen2/3). In eval mode, or at rate 0, it calls the model's previous attention function
(eager or sdpa) unchanged, so evaluation runs at full speed and a rate-0 model is exact.
A model loaded with another implementation (flash, flex) runs on sdpa while HiddenKey is
on; ``undo`` restores its own.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from lfl_ray.data.blocks import IGNORE_INDEX
from lfl_ray.errors import ConfigError
from lfl_ray.regularization.dropout import (HOOKED_FAMILIES, add_hidden_dropout, base_model,
                                            check_rate, decoder_layers, model_type)

ATTENTION_PREFIX = "lfl_hiddenkey_"
"""Registered attention implementations are named ``lfl_hiddenkey_<base>``."""
BASE_IMPLEMENTATIONS = ("eager", "sdpa")
RATE_ATTR = "hiddenkey_key_dropout"
"""Attribute on each attention module holding its key-dropout rate."""


@dataclass(frozen=True)
class HiddenKeyConfig:
    """The three HiddenKey settings; the paper's defaults are modest rates and weight 1."""

    key_dropout: float = 0.1
    """Column-wise dropout rate of attention logits (keys dropped for all queries of a head)."""
    hidden_dropout: float = 0.1
    """Element-wise dropout rate on each attention and MLP output (hidden representations)."""
    kl_weight: float = 1.0
    """Weight of the bidirectional KL between two passes; 0 skips the second pass."""

    def validate(self) -> "HiddenKeyConfig":
        check_rate("hiddenkey.key_dropout", self.key_dropout)
        check_rate("hiddenkey.hidden_dropout", self.hidden_dropout)
        w = self.kl_weight
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 <= w < float("inf"):
            raise ConfigError("hiddenkey.kl_weight", w, "must be a finite number >= 0")
        return self

    def params(self) -> dict:
        """Flat description for logging (MLflow params)."""
        return {"hiddenkey_key_dropout": self.key_dropout,
                "hiddenkey_hidden_dropout": self.hidden_dropout,
                "hiddenkey_kl_weight": self.kl_weight}


def _masked(scores: torch.Tensor, attention_mask, module) -> torch.Tensor:
    """Scores with the model's mask applied: sdpa masks are bool or None (causal left
    implicit), eager masks are additive floats (0 or the dtype's min)."""
    q_len, k_len = scores.shape[-2:]
    lowest = torch.finfo(scores.dtype).min
    if attention_mask is None:
        if getattr(module, "is_causal", True) and q_len > 1:
            causal = torch.ones(q_len, k_len, dtype=torch.bool, device=scores.device).tril(k_len - q_len)
            return scores.masked_fill(~causal, lowest)
        return scores
    mask = attention_mask[:, :, :, :k_len]
    if mask.dtype == torch.bool:
        return scores.masked_fill(~mask, lowest)
    return scores + mask


def _key_dropout_attention(module, query, key, value, attention_mask, scaling, dropout=0.0,
                           **kwargs):
    """Eager attention with column-wise key dropout (training mode, rate > 0 only)."""
    from transformers.models.llama.modeling_llama import repeat_kv

    key = repeat_kv(key, module.num_key_value_groups)
    value = repeat_kv(value, module.num_key_value_groups)
    scores = _masked(torch.matmul(query, key.transpose(2, 3)) * scaling, attention_mask, module)
    batch, heads, q_len, k_len = scores.shape
    # One draw per (sequence, head, key): the key is gone for every query of that head.
    dropped = torch.rand(batch, heads, 1, k_len, device=scores.device) < getattr(module, RATE_ATTR)
    positions = torch.arange(q_len, device=scores.device) + (k_len - q_len)
    own = positions[:, None] == torch.arange(k_len, device=scores.device)[None, :]
    # masked_fill, not +min: adding two dtype minima would overflow to -inf and NaN a row.
    scores = scores.masked_fill(dropped & ~own, torch.finfo(scores.dtype).min)
    probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    probs = F.dropout(probs, p=dropout, training=module.training)
    output = torch.matmul(probs, value).transpose(1, 2).contiguous()
    return output, probs


def _base_attention(module, base: str) -> Callable:
    if base == "eager":  # the model's own eager function, so rate 0 is bit-identical
        return sys.modules[type(module).__module__].eager_attention_forward
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
    return ALL_ATTENTION_FUNCTIONS[base]


def _attention_over(base: str) -> Callable:
    def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        if not module.training or not getattr(module, RATE_ATTR, 0.0):
            return _base_attention(module, base)(module, query, key, value, attention_mask,
                                                 scaling=scaling, dropout=dropout, **kwargs)
        return _key_dropout_attention(module, query, key, value, attention_mask, scaling,
                                      dropout=dropout, **kwargs)

    attention.__name__ = f"{ATTENTION_PREFIX}{base}"
    return attention


def _register(base: str) -> str:
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
    from transformers.modeling_utils import AttentionInterface

    name = ATTENTION_PREFIX + base
    if name not in AttentionInterface._global_mapping:
        AttentionInterface.register(name, _attention_over(base))
        # Masks are built for the base implementation (sdpa: bool or None; eager: additive).
        AttentionMaskInterface.register(name, ALL_MASK_ATTENTION_FUNCTIONS[base])
    return name


def enable_hiddenkey(model: torch.nn.Module, cfg: HiddenKeyConfig) -> Callable[[], None]:
    """Switch HiddenKey's key and hidden dropout on for ``model`` (peft-wrapped or not).

    Patches in place; returns a function that undoes it (attention implementation, rates,
    hooks). The KL part lives in :func:`hiddenkey_loss`, which the training loop calls
    instead of its plain forward.
    """
    cfg.validate()
    kind = model_type(model)
    if kind not in HOOKED_FAMILIES:
        raise ConfigError("model_type", kind, f"HiddenKey supports {list(HOOKED_FAMILIES)}")
    causal_lm = base_model(model)
    previous = causal_lm.config._attn_implementation
    if str(previous).startswith(ATTENTION_PREFIX):
        raise ConfigError("hiddenkey", previous, "is already enabled on this model; call its undo first")
    base = previous if previous in BASE_IMPLEMENTATIONS else "sdpa"
    attentions = [layer.self_attn for layer in decoder_layers(model)]
    causal_lm.set_attn_implementation(_register(base))
    for attention in attentions:
        setattr(attention, RATE_ATTR, float(cfg.key_dropout))
    handles = add_hidden_dropout(model, cfg.hidden_dropout)

    def undo() -> None:
        for handle in handles:
            handle.remove()
        for attention in attentions:
            if hasattr(attention, RATE_ATTR):
                delattr(attention, RATE_ATTR)
        causal_lm.set_attn_implementation(previous)

    return undo


def _kl_sum(logits_a: torch.Tensor, logits_b: torch.Tensor) -> torch.Tensor:
    """Sum over rows of (KL(a||b) + KL(b||a)) / 2 for [N, V] logits, in fp32."""
    log_a = F.log_softmax(logits_a.float(), dim=-1)
    log_b = F.log_softmax(logits_b.float(), dim=-1)
    # KL(a||b) + KL(b||a) = sum (p_a - p_b) (log p_a - log p_b)
    return 0.5 * ((log_a.exp() - log_b.exp()) * (log_a - log_b)).sum()


def bidirectional_kl(logits_a: torch.Tensor, logits_b: torch.Tensor,
                     mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over positions of (KL(p_a||p_b) + KL(p_b||p_a)) / 2, p = softmax over the last dim.

    ``mask`` (bool, the logits' shape without the vocab dim) picks the positions; None
    takes all. No positions gives 0.
    """
    vocab = logits_a.shape[-1]
    a, b = logits_a.reshape(-1, vocab), logits_b.reshape(-1, vocab)
    if mask is not None:
        keep = mask.reshape(-1).bool()
        a, b = a[keep], b[keep]
    if a.shape[0] == 0:
        return (logits_a.sum() + logits_b.sum()).float() * 0.0
    return _kl_sum(a, b) / a.shape[0]


def _chunk_terms(head, hidden_a, hidden_b, targets, with_kl: bool):
    logits_a = head(hidden_a).float()
    ce = F.cross_entropy(logits_a, targets, reduction="sum")
    if not with_kl:
        return ce, ce.new_zeros(())
    logits_b = head(hidden_b).float()
    ce = (ce + F.cross_entropy(logits_b, targets, reduction="sum")) / 2
    return ce, _kl_sum(logits_a, logits_b)


def hiddenkey_loss(model: torch.nn.Module, batch: dict, cfg: HiddenKeyConfig,
                   chunk_size: int = 1024) -> tuple[torch.Tensor, dict]:
    """HiddenKey's training loss for one batch, after ``enable_hiddenkey(model, cfg)``.

    ``batch`` holds ``input_ids``, ``labels`` (IGNORE_INDEX where no loss is taken, same
    alignment as input_ids: position t predicts label t+1) and optionally
    ``attention_mask``. Runs two passes with independent dropout masks (the batch stacked
    on itself: twice the cost of a plain step) and returns
    ``(CE1 + CE2) / 2 + kl_weight * bidirectional KL``, each a mean over loss tokens, with
    the parts ``{"ce", "kl"}`` (detached) and ``"tokens"`` (the loss-token count, to
    rescale to a sum for gradient accumulation). Like ``lfl_ray.train.loss``, the LM head
    runs chunk by chunk (``chunk_size`` loss tokens, 0 for one chunk) under checkpointing,
    so the full logits are never held at once.
    """
    ids, labels = batch["input_ids"], batch["labels"]
    attention_mask = batch.get("attention_mask")
    with_kl = cfg.kl_weight > 0
    passes = 2 if with_kl else 1
    causal_lm = base_model(model)
    hidden = causal_lm.get_decoder()(
        input_ids=ids.repeat(passes, 1),
        attention_mask=None if attention_mask is None else attention_mask.repeat(passes, 1),
    ).last_hidden_state
    targets = labels[:, 1:]
    keep = targets != IGNORE_INDEX
    rows = ids.shape[0]
    hidden_a = hidden[:rows, :-1][keep]
    hidden_b = hidden[rows:, :-1][keep] if with_kl else hidden_a
    targets = targets[keep]
    tokens = targets.numel()
    if tokens == 0:
        zero = hidden.sum() * 0.0
        return zero, {"ce": zero.detach(), "kl": zero.detach(), "tokens": 0}
    head = causal_lm.get_output_embeddings()
    chunk_size = chunk_size or tokens  # 0 or None: the whole batch in one chunk
    ce = kl = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, tokens, chunk_size):
        piece = slice(start, start + chunk_size)
        args = (head, hidden_a[piece], hidden_b[piece], targets[piece], with_kl)
        ce_part, kl_part = (checkpoint(_chunk_terms, *args, use_reentrant=False)
                            if torch.is_grad_enabled() else _chunk_terms(*args))
        ce, kl = ce + ce_part, kl + kl_part
    ce, kl = ce / tokens, kl / tokens
    loss = ce + cfg.kl_weight * kl if with_kl else ce
    return loss, {"ce": ce.detach(), "kl": kl.detach(), "tokens": tokens}
