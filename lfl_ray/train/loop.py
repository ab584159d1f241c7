"""The per-worker training loop that Ray Train runs (one process per worker).

Reads top to bottom: set up (model and method, loss, optimizer and schedule, restore the
latest checkpoint if Ray Train hands one, wrap for DDP or DeepSpeed: ``setup.py``) -> step
through the token budget, reporting every ``report_every`` steps and, at each milestone,
evaluating (``milestone_eval.py``), logging to MLflow and saving a checkpoint. Non-finite
losses stop the trial with a clear reason; a sweep's scheduler stops it at a report
(``stop.py``); tests break it on purpose (``faults.py``).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import torch

from lfl_ray.mlflow_schema import Metric
from lfl_ray.train.config import TrialConfig
from lfl_ray.train.faults import inject_fault
from lfl_ray.train.milestone_eval import eval_threads, evaluate_milestone
from lfl_ray.train.setup import build_training
from lfl_ray.train.stop import stop_requested


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf: training on would only produce garbage."""


def train_loop_per_worker(loop_config: dict) -> None:
    """Ray Train entry point. ``loop_config`` holds: trial (TrialConfig), data (DataSpec or
    TokenBlocks), and optionally evaluator + base (milestone evals), logger (RunLogger) and
    stop_key (the name a sweep's scheduler stops this trial by)."""
    import ray.train

    cfg: TrialConfig = loop_config["trial"]
    logger = loop_config.get("logger")
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    run = build_training(cfg, loop_config["data"], rank=rank, world=world, checkpoint=ray.train.get_checkpoint())
    threads = eval_threads(cfg, ctx.get_local_world_size())

    step, tokens = run.start_step, run.start_tokens
    window_start, window_tokens, window_loss, window_count = time.perf_counter(), 0, 0.0, 0
    if rank == 0 and logger is not None and not run.resumed:
        logger.log_metrics({"trainable_params": run.description.trainable_params,
                            "trainable_fraction": run.description.trainable_fraction}, step=0)
    run.model.train()
    while step < cfg.budget.steps:
        step_loss_sum = torch.zeros((), dtype=torch.float64)
        step_count = torch.zeros((), dtype=torch.float64)
        for micro in range(cfg.grad_accum):
            loss_sum, count = run.loss_of(step * cfg.grad_accum + micro)
            # Mean over loss tokens of this micro-batch, averaged over micro-batches and ranks.
            loss = loss_sum / count.clamp(min=1) / cfg.grad_accum
            loss = inject_fault(cfg.fault, step + 1, rank, run.resumed, loss)
            if not torch.isfinite(loss.detach()):
                raise NonFiniteLossError(
                    f"loss became {loss.item()} at step {step + 1} (lr {cfg.lr:g}): stopping this trial; "
                    "lower the learning rate or check the data")
            run.backward(loss, last=micro == cfg.grad_accum - 1)
            step_loss_sum += loss_sum.detach().double().cpu()
            step_count += count.detach().double().cpu()
        run.optimizer_step()
        step += 1
        tokens += run.tokens_per_step
        window_tokens += run.tokens_per_step
        window_loss += float(step_loss_sum)
        window_count += float(step_count)

        at_milestone = step in cfg.eval_steps
        if step % cfg.report_every == 0 or at_milestone:
            elapsed = time.perf_counter() - window_start
            metrics = {"step": step, "tokens": tokens, "train_loss": window_loss / max(window_count, 1.0),
                       Metric.LR: run.lr, "tokens_per_s": window_tokens / max(elapsed, 1e-9)}
            if rank == 0 and logger is not None:
                logger.log_metrics({k: v for k, v in metrics.items() if k not in ("step", "tokens")}, step=tokens)
            checkpoint_dir = None
            if at_milestone:
                metrics["milestone"] = cfg.eval_steps.index(step) + 1
                metrics.update(evaluate_milestone(loop_config.get("evaluator"), loop_config.get("base"), run.model,
                                                  cfg, rank=rank, world=world, logger=logger, tokens=tokens,
                                                  threads=threads))
                checkpoint_dir = run.save(step, tokens)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(checkpoint_dir)
                             if checkpoint_dir and rank == 0 else None)
            if checkpoint_dir:  # the report returns once Ray has copied it to the run's storage
                shutil.rmtree(Path(checkpoint_dir).parent, ignore_errors=True)
            window_start, window_tokens, window_loss, window_count = time.perf_counter(), 0, 0.0, 0
            if stop_requested(loop_config.get("stop_key")):
                break
    run.close()
