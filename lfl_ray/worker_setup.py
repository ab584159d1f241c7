"""Runs in every Ray worker process of an lfl-ray job as it starts (``worker_process_setup_hook``).

A trial's Ray Train workers import torch, transformers' Llama modelling code and peft before
their first step (transformers imports model modules lazily, on first use). Ray starts idle
worker processes ahead of demand; doing these imports there takes them off the path from a
trial's start to its first step whenever a trial lands on an already-started process.
"""

from __future__ import annotations

import os

PRELOAD_ENV = "LFL_RAY_PRELOAD"
"""Set to 0 to start Ray workers without the imports."""


def preload() -> None:
    if os.environ.get(PRELOAD_ENV, "1") == "0":
        return
    import peft  # noqa: F401
    import torch  # noqa: F401
    import transformers.models.llama.modeling_llama  # noqa: F401
