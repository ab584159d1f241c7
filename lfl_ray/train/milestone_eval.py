"""Evaluation at a milestone, across a trial's Ray Train workers.

The evaluator (``lfl_ray.eval.milestone.MilestoneEvaluator``) scores one model; this module
decides which rank runs what, joins the loss shards, lends rank 0 the node's cores on CPU,
and logs the result to MLflow, so the training loop makes one call per milestone.
"""

from __future__ import annotations

import math
import time

import torch

from lfl_ray import mlflow_schema as schema
from lfl_ray.train.config import TrialConfig
from lfl_ray.train.setup import uses_zero3, worker_threads


def eval_threads(cfg: TrialConfig, local_world_size: int) -> int:
    """Threads for rank 0's evals: on CPU the cores of every worker on its node (the others
    wait at the barrier meanwhile); on GPUs, or under ZeRO-3 where every rank evaluates,
    each keeps its own."""
    return worker_threads(cfg) * (1 if cfg.resources.use_gpu or uses_zero3(cfg) else local_world_size)


def evaluate_milestone(evaluator, base_result, model, cfg: TrialConfig, *, rank: int, world: int, logger,
                       step: int, tokens: int, threads: int) -> dict:
    """Milestone evaluation. With ``split_loss_evals`` (default: DDP on GPUs) every rank
    scores its slice of the loss suites' blocks and rank 0 joins them. Rank 0 runs the
    other suites; on CPU it borrows its node's cores while the other ranks wait at the
    barrier. Under ZeRO-3, whose forward gathers parameters from every rank, all ranks run
    every suite in step.

    Returns the finite numeric metrics (compared with ``base_result`` when given) on rank 0,
    {} on the others; rank 0 also logs them at optimizer step ``step`` and the full result
    (named by ``tokens``) to ``logger``."""
    if evaluator is None:
        return {}
    import torch.distributed as dist

    from lfl_ray.eval.suites import join_loss_shards

    zero3 = uses_zero3(cfg)
    split = (cfg.resources.use_gpu if cfg.split_loss_evals is None else cfg.split_loss_evals)
    split = split and world > 1 and not zero3 and dist.is_initialized()
    losses = [s for s in evaluator.spec.suites if evaluator.suites[s].kind == "loss"] if split else []
    rest = [s for s in evaluator.spec.suites if s not in losses]
    metrics: dict = {}
    was_training, train_threads = model.training, torch.get_num_threads()
    start = time.monotonic()
    model.eval()
    try:
        parts: list = [None] * world
        if losses:
            part = evaluator(model, None, suites=losses, shard=(rank, world))
            dist.all_gather_object(parts, part)
        result = None
        if rank == 0 or zero3:
            from lfl_ray.models import load_tokenizer

            torch.set_num_threads(threads)
            hostile = cfg.fault.hostile_completions if cfg.fault is not None else ()
            result = evaluator(model, load_tokenizer(cfg.model), completions=hostile, suites=rest)
            if losses:
                result.merge(join_loss_shards(parts))
                result.metrics["eval_seconds"] = time.monotonic() - start
                result.metrics["eval_loss_ranks"] = float(world)
    finally:
        torch.set_num_threads(train_threads)
        model.train(was_training)
    if rank == 0 and result is not None:
        metrics = evaluator.compare(result, base_result) if base_result is not None else dict(result.metrics)
        if logger is not None:
            schema.log_milestone(logger, step=step, tokens=tokens, metrics=metrics, eval_json=result.to_json())
    if world > 1 and dist.is_initialized():
        dist.barrier()
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(float(v))}
