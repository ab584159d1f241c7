"""Dry-run cost estimate: tokens, FLOPs (6N per token for full FT, ~4N for LoRA), GPU-hours.

N is the parameter count a token multiplies through, read from the model's config (the
model is built on the meta device, no weights): every parameter but the input and position
embeddings, which are lookups; a head tied to the input embedding is a matmul and counts.
So any model with a config (a built-in, a local folder, a hub id in the local HF cache or
reachable) gets a cost; only a hub id whose config cannot be had falls back to a short table.

LoRA skips the weight-gradient matmuls of frozen weights: forward 2N + input-gradient 2N
per token. GPU-hours assume a stated MFU of the H100's dense bf16 peak. Evaluation time is
not included.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

H100_BF16_PEAK = 989e12
"""Dense bf16 FLOP/s of an H100 SXM."""
ASSUMED_MFU = 0.40
"""Model FLOP utilization assumed for ZeRO-3 training at 7B scale."""
CPU_FLOPS = 250e9 * 0.55
"""This 2-core machine: ~250 GFLOP/s fp32 matmul peak, ~55% reached by full FT (field notes)."""

KNOWN_PARAMS = {"meta-llama/Llama-2-7b-hf": 6.74e9, "HuggingFaceTB/SmolLM2-135M-Instruct": 134.5e6,
                "smollm2-135m-instruct": 134.5e6, "gemma3-270m": 268.1e6}
"""Sizes known without a config (used only when the config cannot be had: a built-in not yet
converted, a hub id offline)."""


@dataclass(frozen=True)
class TrialCost:
    tokens: int
    flops: float
    gpu_hours: float
    cpu_hours: float


@lru_cache(maxsize=32)
def model_params(model: str) -> float:
    """N for the FLOPs of ``model`` (a spec as the sweep takes it); nan when it cannot be known."""
    from lfl_ray.errors import ConfigError
    from lfl_ray.model_config import layout, load_config

    try:
        config = load_config(model)
        if config is not None:
            return float(layout(config).matmul_params)
    except ConfigError:
        pass
    return KNOWN_PARAMS.get(model, float("nan"))


def trial_cost(model: str, method: str, tokens: int) -> TrialCost:
    n = model_params(model)
    flops = (6.0 if method == "full" else 4.0) * n * tokens
    return TrialCost(tokens, flops, flops / (H100_BF16_PEAK * ASSUMED_MFU) / 3600, flops / CPU_FLOPS / 3600)
