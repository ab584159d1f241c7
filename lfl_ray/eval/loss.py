"""Token losses on TokenBlocks and drift, the mean per-token KL(base || tuned).

Loss: each block's mean next-token loss over its labelled positions is one item (paired
across models, clustered by ``doc_ids``); the metric is the mean over blocks.

Drift needs the base model's distribution at every labelled position. Full-vocabulary
logits do not fit on disk (32 blocks x 256 x 49,152 x 2 bytes = 800 MB) and keeping a base
model copy beside the tuned one in every training worker costs its memory. So the base
pass keeps, per position, the top-k (default 64) log-probabilities with their token ids,
and drift is the KL between the coarsened distributions over k+1 outcomes (the k tokens
and "everything else"):

    KL_k = sum_{i<=k} p_i (log p_i - log q_i) + p_rest (log p_rest - log q_rest)

By the log-sum inequality this is a lower bound of the full KL, equal to it when the
base puts no mass outside its top k (and exact for k = vocab size); it is zero when the
models agree. At 8 bytes per kept entry the reference is 4 MB for 32 x 256 tokens at k=64,
small enough to ship with the evaluator to Ray workers.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from lfl_ray.progress import progress

from lfl_ray.data.blocks import IGNORE_INDEX, TokenBlocks
from lfl_ray.eval.backend import model_device

TOP_K = 64


@dataclass
class DriftReference:
    """The base model's top-k next-token log-probs at every labelled position of the blocks."""

    token_ids: list[torch.Tensor]
    """Per block, [positions, k] int32 token ids."""
    logprobs: list[torch.Tensor]
    """Per block, [positions, k] float32 log-probabilities."""

    def to_state(self) -> dict:
        return {"token_ids": self.token_ids, "logprobs": self.logprobs}

    @classmethod
    def from_state(cls, state: dict) -> "DriftReference":
        return cls(list(state["token_ids"]), list(state["logprobs"]))


def _batches(blocks: TokenBlocks, batch_size: int):
    """(row indices, ids, labels, mask) batches, longest rows first, each cut to its longest
    row: rows are right-padded and the models causal, so trailing pad columns change no
    real position's logits and need no forward pass (general-text passages are about a third
    padding at ``seq_len`` 128)."""
    lengths = blocks.attention_mask.sum(1)
    order = sorted(range(len(blocks)), key=lambda i: (-int(lengths[i]), i))
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        width = max(1, int(lengths[rows].max())) if rows else 1
        yield (rows, blocks.input_ids[rows, :width], blocks.labels[rows, :width],
               blocks.attention_mask[rows, :width])


def _positions(labels: torch.Tensor) -> torch.Tensor:
    """Mask [B, L-1] of positions whose next token carries a label."""
    return labels[:, 1:] != IGNORE_INDEX


def block_losses(model, blocks: TokenBlocks, *, batch_size: int = 8,
                 desc: str = "loss") -> list[float]:
    """Mean next-token loss of each block over its labelled positions."""
    return scan_blocks(model, blocks, batch_size=batch_size, desc=desc)[0]


@torch.no_grad()
def scan_blocks(model, blocks: TokenBlocks, *, batch_size: int = 8, losses: bool = True,
                reference: "DriftReference | None" = None,
                desc: str = "") -> tuple[list[float] | None, list[float] | None]:
    """One forward pass over ``blocks`` for both per-block numbers: the mean next-token loss
    (when ``losses``) and the mean coarse KL(base || model) against ``reference`` (when
    given). General-text loss and drift share their blocks, so a milestone pays one pass."""
    if reference is not None and len(reference.token_ids) != len(blocks):
        raise ValueError(f"drift reference covers {len(reference.token_ids)} blocks, "
                         f"the general set has {len(blocks)}: rebuild it with base()")
    device = model_device(model)
    nlls: list[float] | None = [0.0] * len(blocks) if losses else None
    kls: list[float] | None = [0.0] * len(blocks) if reference is not None else None
    batches = list(_batches(blocks, batch_size))
    for rows, ids, labels, mask in progress(batches, desc=desc, unit="batch"):
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        logp = logits[:, :-1].float().log_softmax(-1)
        del logits
        target = labels[:, 1:].to(device)
        keep = target != IGNORE_INDEX
        if nlls is not None:
            nll = -logp.gather(-1, target.clamp_min(0)[..., None])[..., 0]
            nll = (nll * keep).sum(1) / keep.sum(1).clamp_min(1)
            for row, value in zip(rows, nll):
                nlls[row] = float(value)
        if kls is not None:
            for j, row in enumerate(rows):
                kl = coarse_kl(reference.logprobs[row].to(device), logp[j][keep[j]],
                               reference.token_ids[row].to(device))
                kls[row] = float(kl.mean()) if kl.numel() else 0.0
    return nlls, kls


@torch.no_grad()
def drift_reference(model, blocks: TokenBlocks, *, k: int = TOP_K, batch_size: int = 8,
                    desc: str = "drift reference") -> DriftReference:
    """The base model's top-k log-probs at the labelled positions of ``blocks``."""
    device = model_device(model)
    ids_out: list = [None] * len(blocks)
    lp_out: list = [None] * len(blocks)
    batches = list(_batches(blocks, batch_size))
    for rows, ids, labels, mask in progress(batches, desc=desc, unit="batch"):
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        logp = logits[:, :-1].float().log_softmax(-1)
        keep = _positions(labels).to(device)
        for j, row in enumerate(rows):
            top = logp[j][keep[j]].topk(min(k, logp.shape[-1]), dim=-1)
            ids_out[row] = top.indices.to(torch.int32).cpu()
            lp_out[row] = top.values.cpu()
    return DriftReference(ids_out, lp_out)


def coarse_kl(p_logprobs: torch.Tensor, q_logprobs_full: torch.Tensor,
              token_ids: torch.Tensor) -> torch.Tensor:
    """Per-position KL over (top-k tokens of p, rest) between p and q; q given in full."""
    q_top = q_logprobs_full.gather(-1, token_ids.long())
    p_top = p_logprobs
    p_rest = (1.0 - p_top.exp().sum(-1)).clamp_min(0.0)
    q_rest = (1.0 - q_top.exp().sum(-1)).clamp_min(1e-30)
    kl_top = (p_top.exp() * (p_top - q_top)).sum(-1)
    kl_rest = torch.xlogy(p_rest, p_rest) - torch.xlogy(p_rest, q_rest)
    return kl_top + kl_rest


def block_drift(model, blocks: TokenBlocks, reference: DriftReference, *, batch_size: int = 8,
                desc: str = "drift") -> list[float]:
    """Mean per-token coarse KL(base || model) of each block."""
    return scan_blocks(model, blocks, batch_size=batch_size, losses=False, reference=reference,
                       desc=desc)[1]
