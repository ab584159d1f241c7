"""Test-only fault injection: break a trial for real at a chosen step (no mocks).

The faults are declared by ``lfl_ray.train.config.FaultInjection``; the training loop
passes each micro-batch's loss through ``inject_fault`` before its NaN guard, so a
reliability test exercises the same paths a real failure takes.
"""

from __future__ import annotations

import os

import torch


def inject_fault(fault, step: int, rank: int, resumed: bool, loss: torch.Tensor) -> torch.Tensor:
    """``loss``, or the fault that ``fault`` (a FaultInjection or None) asks for at ``step``:
    a raised error, rank 1 exiting, a NaN loss or a real allocator failure."""
    if fault is None or (fault.only_first_attempt and resumed):
        return loss
    if fault.raise_at_step == step:
        raise RuntimeError(f"injected fault: trial raised at step {step}")
    if fault.config_error_at_step == step:
        from lfl_ray.errors import ConfigError

        raise ConfigError("injected.field", step, "must survive the trip through Ray", hint="a test fault")
    if fault.asset_error_at_step == step:
        from lfl_ray.errors import AssetMissingError

        raise AssetMissingError("injected asset", f"step {step} of a test fault")
    if fault.kill_worker_at_step == step and rank == 1:
        os._exit(1)
    if fault.nan_at_step == step:
        return loss * float("nan")
    if fault.oom_at_step == step:
        # A real allocator failure (asks for 1 PiB: refused at once, nothing is touched).
        torch.empty(2**48, dtype=torch.float32, device=loss.device)
    return loss
