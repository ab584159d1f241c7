"""A worker's training batches: its shard of the token blocks, in a seeded, resumable order."""

from __future__ import annotations

import torch

from lfl_ray.data.blocks import TokenBlocks


def resolve_train_blocks(data) -> TokenBlocks:
    """TokenBlocks as given, or built from a lfl_ray.data.DataSpec (cached on disk)."""
    if isinstance(data, TokenBlocks):
        return data
    from lfl_ray.data import load_regime

    return load_regime(data, log=lambda *_: None).train


class BatchStream:
    """Deterministic micro-batches over this worker's rows, reshuffled each epoch by seed."""

    def __init__(self, blocks: TokenBlocks, micro_batch_size: int, seed: int):
        if len(blocks) < micro_batch_size:
            raise ValueError(f"this worker has {len(blocks)} rows, fewer than micro_batch_size "
                             f"{micro_batch_size}: use more data or a smaller batch")
        self.blocks, self.micro, self.seed = blocks, micro_batch_size, seed
        self.per_epoch = len(blocks) // micro_batch_size

    def batch(self, index: int) -> dict[str, torch.Tensor]:
        """The ``index``-th micro-batch of the stream (pure function of index: resumable)."""
        epoch, pos = divmod(index, self.per_epoch)
        gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(len(self.blocks), generator=gen)
        rows = order[pos * self.micro:(pos + 1) * self.micro]
        return {"input_ids": self.blocks.input_ids[rows], "attention_mask": self.blocks.attention_mask[rows],
                "labels": self.blocks.labels[rows]}
