"""Fixed, seeded item subsets and fingerprints of the items a suite evaluated.

The base model and every trial must see the same items, so a subset depends only on the
number of items, the limit and the seed; the fingerprint goes into the base-result cache
key so that changed data never serves a stale base result.
"""

from __future__ import annotations

import hashlib
import json
import random


def fixed_subset(n: int, limit: int | None, seed: int) -> list[int]:
    """Sorted indices of ``limit`` of ``n`` items drawn with ``seed`` (all when no limit)."""
    if limit is None or limit >= n:
        return list(range(n))
    return sorted(random.Random(f"lfl-ray-eval:{seed}").sample(range(n), limit))


def fingerprint(payload) -> str:
    """A short stable hash of JSON-able item descriptions (ids, prompts, answers)."""
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def tensor_fingerprint(*tensors) -> str:
    """A short stable hash of tensors' bytes (token blocks)."""
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(str(tuple(t.shape)).encode())
        digest.update(t.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]
