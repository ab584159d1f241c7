"""The per-worker training loop that Ray Train runs (one process per worker).

Reads top to bottom: set up (model and method, loss, optimizer and schedule, restore the
latest checkpoint if Ray Train hands one, wrap for DDP or DeepSpeed: ``setup.py``) -> step
through the token budget, reporting every ``report_every`` steps and, at each milestone,
evaluating (``milestone_eval.py``), logging to MLflow, saving a checkpoint and logging a LoRA
adapter. Rank 0 samples system metrics onto the run meanwhile (``system_metrics.py``).
Non-finite losses stop the trial with a clear reason; a sweep's scheduler stops it at a
report (``stop.py``); tests break it on purpose (``faults.py``).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import torch

from lfl_ray import mlflow_schema as schema
from lfl_ray.mlflow_schema import Metric
from lfl_ray.progress import quiet_library_bars
from lfl_ray.tracking import RunLogger
from lfl_ray.train.checkpoint import MODEL_DIR, is_lora
from lfl_ray.train.config import TrialConfig
from lfl_ray.train.faults import inject_fault
from lfl_ray.train.milestone_eval import eval_threads, evaluate_milestone
from lfl_ray.train.setup import build_training
from lfl_ray.train.stop import stop_requested
from lfl_ray.train.system_metrics import start_system_metrics

REPORT_LOGS_ENV = "LFL_RAY_TRAIN_REPORT_LOGS"
"""``1`` keeps Ray Train's "Reporting training result N: TrainingReport(...)" lines."""


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf: training on would only produce garbage."""


def quiet_report_lines() -> None:
    """Silence Ray Train's INFO line per ``ray.train.report`` (the whole metrics dict, from
    every worker): the sweep's driver prints a short progress line per report instead
    (``lfl_ray.sweep.progress``). Unless ``LFL_RAY_TRAIN_REPORT_LOGS=1``."""
    if os.environ.get(REPORT_LOGS_ENV) == "1":
        return
    try:
        from ray.train.v2._internal.execution import context
    except ImportError:  # another Ray Train: leave its logging alone
        return
    logging.getLogger(context.__file__).setLevel(logging.WARNING)  # Ray names this logger by its file


def train_loop_per_worker(loop_config: dict) -> None:
    """Ray Train entry point. ``loop_config`` holds: trial (TrialConfig), data (DataSpec or
    TokenBlocks), and optionally evaluator + base (milestone evals), logger (RunLogger) and
    stop_key (the name a sweep's scheduler stops this trial by)."""
    import ray.train

    cfg: TrialConfig = loop_config["trial"]
    logger = loop_config.get("logger")
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    quiet_report_lines()
    quiet_library_bars()
    run = build_training(cfg, loop_config["data"], rank=rank, world=world, checkpoint=ray.train.get_checkpoint())
    threads = eval_threads(cfg, ctx.get_local_world_size())
    mlflow_run = logger if rank == 0 and isinstance(logger, RunLogger) else None  # not a benchmark's probe
    monitor = start_system_metrics(mlflow_run.tracking_uri, mlflow_run.run_id, resume=run.resumed) if mlflow_run else None
    try:
        _train(cfg, run, loop_config, logger, mlflow_run, rank=rank, world=world, threads=threads)
    finally:
        if monitor is not None:
            monitor.stop()
        run.close()


def _train(cfg: TrialConfig, run, loop_config: dict, logger, mlflow_run: RunLogger | None, *, rank: int, world: int,
           threads: int) -> None:
    """Step through the budget from where ``run`` starts: report, evaluate, checkpoint.
    ``mlflow_run``: rank 0's MLflow run, where a LoRA adapter is logged at each milestone."""
    import ray.train

    step, tokens = run.start_step, run.start_tokens
    window_start, window_tokens, window_loss, window_count = time.perf_counter(), 0, 0.0, 0
    if rank == 0 and logger is not None and not run.resumed:
        schema.log_trainable_params(logger, run.description.trainable_params, run.description.trainable_fraction)
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
            metrics = {Metric.STEP: step, Metric.TOKENS: tokens, Metric.TRAIN_LOSS: window_loss / max(window_count, 1.0),
                       Metric.LR: run.lr, Metric.TOKENS_PER_S: window_tokens / max(elapsed, 1e-9)}
            if rank == 0 and logger is not None:
                schema.log_training(logger, step=step, tokens=tokens, train_loss=metrics[Metric.TRAIN_LOSS],
                                    lr=run.lr, tokens_per_s=metrics[Metric.TOKENS_PER_S])
            checkpoint_dir = None
            if at_milestone:
                metrics[Metric.MILESTONE] = cfg.eval_steps.index(step) + 1
                metrics.update(evaluate_milestone(loop_config.get("evaluator"), loop_config.get("base"), run.model,
                                                  cfg, rank=rank, world=world, logger=logger, step=step,
                                                  tokens=tokens, threads=threads))
                checkpoint_dir = run.save(step, tokens)
                if checkpoint_dir and mlflow_run is not None and is_lora(run.model):
                    schema.log_adapter(mlflow_run.tracking_uri, mlflow_run.run_id, Path(checkpoint_dir) / MODEL_DIR)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(checkpoint_dir)
                             if checkpoint_dir and rank == 0 else None)
            if checkpoint_dir:  # the report returns once Ray has copied it to the run's storage
                shutil.rmtree(Path(checkpoint_dir).parent, ignore_errors=True)
            window_start, window_tokens, window_loss, window_count = time.perf_counter(), 0, 0.0, 0
            if stop_requested(loop_config.get("stop_key")):
                break
