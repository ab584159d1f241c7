"""Causal-LM loss that never holds the full [tokens x vocab] logits.

With SmolLM2's 49k vocabulary, the logits of a 4 x 256 batch are 200 MB in fp32 and their
gradient as much again. ``LossModule`` runs the decoder, then the LM head and the
cross-entropy chunk by chunk, so at most one chunk of logits is alive at a time. For a
plain bias-free head (every Llama-style model) each chunk's gradients with respect to the
hidden states and the head weight are computed in the forward pass itself (the softmax
minus the one-hot target, times the weight or the hidden states), so backward never
recomputes the head: checkpointing each chunk instead would add one head matmul per token
(+7% FLOPs on SmolLM2 full FT, +10% for LoRA, most of a step on a tiny model with a 49k
vocabulary). Other heads, and DeepSpeed ZeRO-3 partitioned weights (which gather in the
head's forward hook), take the checkpointed path. Wrapping the loss in a module lets DDP and
DeepSpeed see one forward call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from lfl_ray.data.blocks import IGNORE_INDEX


def _base_causal_lm(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers CausalLM under peft wrappers."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _chunk_ce_sum(head: torch.nn.Module, hidden: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    logits = head(hidden).float()
    return F.cross_entropy(logits, labels, ignore_index=IGNORE_INDEX, reduction="sum")


class _LinearCrossEntropy(torch.autograd.Function):
    """Summed cross-entropy of ``hidden @ weight.T`` whose gradients are computed chunk by chunk
    in forward; backward only scales them by the incoming gradient (the loss is linear in it)."""

    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk_size):
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        w = weight.to(hidden.dtype)
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_weight else None
        for start in range(0, targets.numel(), chunk_size):
            h, t = hidden[start:start + chunk_size], targets[start:start + chunk_size]
            logits = (h @ w.t()).float()
            lse = torch.logsumexp(logits, dim=-1)
            total += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
            if need_hidden or need_weight:
                probs = logits.sub_(lse[:, None]).exp_()  # softmax, in place of the logits
                probs[torch.arange(t.numel(), device=t.device), t] -= 1.0
                probs = probs.to(h.dtype)
                if need_hidden:
                    grad_hidden[start:start + chunk_size] = probs @ w
                if need_weight:
                    grad_weight += (probs.t() @ h).float()
        ctx.weight_dtype = weight.dtype
        ctx.save_for_backward(grad_hidden, grad_weight)
        return total

    @staticmethod
    def backward(ctx, grad_total):
        grad_hidden, grad_weight = ctx.saved_tensors
        if grad_hidden is not None:
            grad_hidden = grad_hidden * grad_total.to(grad_hidden.dtype)
        if grad_weight is not None:
            grad_weight = (grad_weight * grad_total).to(ctx.weight_dtype)
        return grad_hidden, grad_weight, None, None


def _fusable(head: torch.nn.Module) -> bool:
    """A plain bias-free Linear whose weight is whole (not a DeepSpeed ZeRO-3 partition)."""
    return (type(head) is torch.nn.Linear and head.bias is None
            and not hasattr(head.weight, "ds_id") and head.weight.dim() == 2)


def chunked_lm_loss(head: torch.nn.Module, hidden: torch.Tensor, labels: torch.Tensor,
                    chunk_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of next-token cross-entropy and the count of loss tokens, chunk by chunk."""
    hidden = hidden[:, :-1, :].reshape(-1, hidden.shape[-1])
    targets = labels[:, 1:].reshape(-1)
    keep = targets != IGNORE_INDEX
    hidden, targets = hidden[keep], targets[keep]
    count = targets.new_tensor(targets.numel())
    if targets.numel() == 0:
        return hidden.sum() * 0.0, count
    if torch.is_grad_enabled() and _fusable(head):
        return _LinearCrossEntropy.apply(hidden, head.weight, targets, chunk_size), count
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, targets.numel(), chunk_size):
        piece = slice(start, start + chunk_size)
        if torch.is_grad_enabled():
            total = total + checkpoint(_chunk_ce_sum, head, hidden[piece], targets[piece],
                                       use_reentrant=False)
        else:
            total = total + _chunk_ce_sum(head, hidden[piece], targets[piece])
    return total, count


class LossModule(torch.nn.Module):
    """model + loss in one forward: returns (loss_sum, loss_token_count)."""

    def __init__(self, model: torch.nn.Module, chunk_size: int = 1024, hiddenkey=None):
        super().__init__()
        self.model = model
        self.chunk_size = chunk_size
        self.hiddenkey = hiddenkey
        """HiddenKeyConfig: two dropout passes + bidirectional KL (twice the forward cost)."""

    def forward(self, input_ids, attention_mask, labels):
        if self.hiddenkey is not None:
            from lfl_ray.regularization.hiddenkey import hiddenkey_loss

            batch = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
            mean_loss, _parts = hiddenkey_loss(self.model, batch, self.hiddenkey)
            count = (labels[:, 1:] != IGNORE_INDEX).sum()
            return mean_loss * count, count
        if not self.chunk_size:
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits.float()
            targets = labels[:, 1:].reshape(-1)
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), targets,
                                   ignore_index=IGNORE_INDEX, reduction="sum")
            return loss, (targets != IGNORE_INDEX).sum()
        causal_lm = _base_causal_lm(self.model)
        # Run the decoder through the (peft-)wrapped model so adapters and hooks apply,
        # but ask for hidden states instead of logits.
        decoder = causal_lm.get_decoder()
        hidden = decoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return chunked_lm_loss(causal_lm.get_output_embeddings(), hidden, labels, self.chunk_size)
