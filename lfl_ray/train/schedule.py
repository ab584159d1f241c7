"""Learning-rate schedules of the paper, as multipliers of the peak rate.

IFT: linear warmup, then cosine decay to a floor (the paper: 10% warmup, floor 0.01).
CPT: inverse square root after a linear warmup, with a linear cooldown to 0 at the end
(the paper: 1000-batch warmup, 5086-batch cooldown of its full runs).
"""

from __future__ import annotations

import math

import torch

SCHEDULES = ("cosine", "inverse_sqrt", "constant")


def warmup_cosine(step: int, total: int, warmup: int, floor: float = 0.01) -> float:
    """Multiplier at ``step`` (0-based) of ``total`` optimizer steps."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    progress = min(max(progress, 0.0), 1.0)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def inverse_sqrt(step: int, total: int, warmup: int, cooldown: int = 0) -> float:
    """Multiplier: linear warmup, then sqrt(warmup/step), then a linear cooldown to 0."""
    warmup = max(warmup, 1)
    if step < warmup:
        value = (step + 1) / warmup
    else:
        value = math.sqrt(warmup / (step + 1))
    if cooldown > 0 and step >= total - cooldown:
        value *= max(0.0, (total - step) / cooldown)
    return value


def multiplier(name: str, step: int, total: int, warmup: int, *, floor: float = 0.01,
               cooldown: int = 0) -> float:
    if name == "cosine":
        return warmup_cosine(step, total, warmup, floor)
    if name == "inverse_sqrt":
        return inverse_sqrt(step, total, warmup, cooldown)
    if name == "constant":
        return min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    raise ValueError(f"schedule: got {name!r}; must be one of {list(SCHEDULES)}")


def build_scheduler(optimizer, name: str, total: int, warmup: int, *, floor: float = 0.01,
                    cooldown: int = 0) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: multiplier(name, step, total, warmup, floor=floor, cooldown=cooldown)
    )
