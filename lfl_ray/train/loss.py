"""Causal-LM loss that never holds the full [tokens x vocab] logits.

With SmolLM2's 49k vocabulary, the logits of a 4 x 256 batch are 200 MB in fp32 and their
gradient as much again. ``LossModule`` runs the decoder, then the LM head and the
cross-entropy chunk by chunk under activation checkpointing, so at most one chunk of
logits is alive at a time. Wrapping the loss in a module lets DDP and DeepSpeed see one
forward call.
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
