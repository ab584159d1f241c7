"""Dry-run cost estimate: tokens, FLOPs (6N per token for full FT, ~4N for LoRA), GPU-hours.

LoRA skips the weight-gradient matmuls of frozen weights: forward 2N + input-gradient 2N
per token. GPU-hours assume a stated MFU of the H100's dense bf16 peak. Evaluation time is
not included.
"""

from __future__ import annotations

from dataclasses import dataclass

H100_BF16_PEAK = 989e12
"""Dense bf16 FLOP/s of an H100 SXM."""
ASSUMED_MFU = 0.40
"""Model FLOP utilization assumed for ZeRO-3 training at 7B scale."""
CPU_FLOPS = 250e9 * 0.55
"""This 2-core machine: ~250 GFLOP/s fp32 matmul peak, ~55% reached by full FT (field notes)."""

KNOWN_PARAMS = {"smollm2-135m-instruct": 134.5e6, "tiny-llama": 3.3e6, "meta-llama/Llama-2-7b-hf": 6.74e9,
                "HuggingFaceTB/SmolLM2-135M-Instruct": 134.5e6}


@dataclass(frozen=True)
class TrialCost:
    tokens: int
    flops: float
    gpu_hours: float
    cpu_hours: float


def trial_cost(model: str, method: str, tokens: int) -> TrialCost:
    n = KNOWN_PARAMS.get(model, float("nan"))
    flops = (6.0 if method == "full" else 4.0) * n * tokens
    return TrialCost(tokens, flops, flops / (H100_BF16_PEAK * ASSUMED_MFU) / 3600, flops / CPU_FLOPS / 3600)
