"""Fixed, seeded item subsets and fingerprints of the items a suite evaluated.

The base model and every trial must see the same items, so a subset depends only on the
number of items, the limit, the seed and the suite's name (each suite draws its own
subset: with one seed string for all, ARC and WinoGrande shared 109 of 120 row indices);
the fingerprint goes into the base-result cache
key so that changed data never serves a stale base result.
"""

from __future__ import annotations

import hashlib
import json
import random


def fixed_subset(n: int, limit: int | None, seed: int, name: str) -> list[int]:
    """Sorted indices of ``limit`` of ``n`` items drawn with ``seed`` for the subset called
    ``name`` (a suite, or the data two suites share), all of them when there is no limit.
    Sorted, so they can be given to lm-eval's ``--samples`` as they are."""
    if limit is None or limit >= n:
        return list(range(n))
    return sorted(random.Random(f"lfl-ray-eval:{name}:{seed}").sample(range(n), limit))


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


SHARED_SUBSETS = {"drift": "general_loss", "heldout_drift": "heldout_loss"}
"""Suites that score another suite's items: KL drift is measured on the general-text (or
held-out) blocks, so with equal limits one forward pass serves both."""


def subset_indices(suite: str, spec, n: int) -> list[int]:
    """Sorted row indices of ``suite``'s fixed subset of its ``n`` items (lm-eval doc ids
    for the multiple-choice suites), drawn independently of every other suite's."""
    return fixed_subset(n, spec.limit(suite), spec.seed, SHARED_SUBSETS.get(suite, suite))
