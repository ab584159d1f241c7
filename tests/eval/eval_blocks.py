"""Random TokenBlocks with a prompt part and shared documents, for the eval tests."""

from __future__ import annotations

import torch


def random_blocks(n: int, length: int, seed: int, docs: int):
    from lfl_ray.data.blocks import TokenBlocks

    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 49152, (n, length), generator=g)
    labels = ids.clone()
    labels[:, : length // 4] = -100  # a prompt part with no loss
    return TokenBlocks(ids, labels, torch.ones_like(ids), [f"doc{i % docs}" for i in range(n)])
