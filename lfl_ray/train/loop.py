"""The per-worker training loop that Ray Train runs (one process per worker).

Reads top to bottom: build model and method -> wrap for DDP or DeepSpeed -> restore the
latest checkpoint if Ray Train hands one -> step through the token budget, reporting every
``report_every`` steps and, at each milestone, evaluating, logging to MLflow and saving a
checkpoint. Non-finite losses stop the trial with a clear reason.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import torch

from lfl_ray.data.blocks import TokenBlocks
from lfl_ray.methods import apply_method
from lfl_ray.models import load_model
from lfl_ray.train.checkpoint import load_checkpoint, save_checkpoint
from lfl_ray.train.config import TrialConfig
from lfl_ray.train.loss import LossModule
from lfl_ray.train.optim import build_optimizer
from lfl_ray.train.schedule import build_scheduler


STOP_PREFIX = "lfl_ray:stop:"


def request_stop(name: str) -> None:
    """Ask the running trial ``name`` to end at its next report (Tune stopped it early).

    A Tune trial whose Ray Train run keeps training after ASHA stopped it would hold its
    workers' resources, and on a small cluster the next trial could never start.
    """
    from ray.experimental.internal_kv import _internal_kv_put

    _internal_kv_put(STOP_PREFIX + name, b"1", overwrite=True)


def stop_requested(name: str | None) -> bool:
    if not name:
        return False
    from ray.experimental.internal_kv import _internal_kv_get

    return _internal_kv_get(STOP_PREFIX + name) is not None


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf: training on would only produce garbage."""


def resolve_train_blocks(data) -> TokenBlocks:
    """TokenBlocks as given, or built from a lfl_ray.data.DataSpec (cached on disk)."""
    if isinstance(data, TokenBlocks):
        return data
    from lfl_ray.data import load_regime

    return load_regime(data, log=lambda *_: None).train


class BatchStream:
    """Deterministic micro-batches over this worker's rows, reshuffled each epoch by seed."""

    def __init__(self, blocks: TokenBlocks, micro_batch_size: int, seed: int):
        if len(blocks) < micro_batch_size:
            raise ValueError(f"this worker has {len(blocks)} rows, fewer than micro_batch_size "
                             f"{micro_batch_size}: use more data or a smaller batch")
        self.blocks, self.micro, self.seed = blocks, micro_batch_size, seed
        self.per_epoch = len(blocks) // micro_batch_size

    def batch(self, index: int) -> dict[str, torch.Tensor]:
        """The ``index``-th micro-batch of the stream (pure function of index: resumable)."""
        epoch, pos = divmod(index, self.per_epoch)
        gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(len(self.blocks), generator=gen)
        rows = order[pos * self.micro:(pos + 1) * self.micro]
        return {"input_ids": self.blocks.input_ids[rows], "attention_mask": self.blocks.attention_mask[rows],
                "labels": self.blocks.labels[rows]}


MMAP_THRESHOLD_ENV = "LFL_RAY_MMAP_THRESHOLD"
"""Bytes; when set, CPU workers call ``limit_heap_retention`` with it (off by default)."""


def limit_heap_retention(threshold: int = 128 * 1024) -> bool:
    """Make glibc give large freed blocks back to the OS at once (lower peak RSS on CPU).

    glibc serves blocks below its mmap threshold from the heap and raises that threshold (up
    to 32 MB) whenever a large mmapped block is freed, so activation-sized tensors soon live
    in the heap, where freed ones stay resident. On SmolLM2 (batch 4 x 256) that kept 1.3-1.7
    GB resident under LoRA: peak RSS 3.6-4.1 GB -> 2.3 GB with a fixed 128 KB threshold, but
    every large tensor then costs fresh page faults: about +3 CPU-s of system time per step
    (bench/memory.py, RESULTS.md), so it is opt-in via LFL_RAY_MMAP_THRESHOLD for runs that
    are short of memory. Returns False where glibc's mallopt is not available.
    """
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-3, int(threshold)))  # -3 = M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def _threads_for(cfg: TrialConfig) -> int:
    forced = os.environ.get("LFL_RAY_THREADS")
    return int(forced) if forced else max(1, int(round(cfg.cpus_per_worker)))


def _deepspeed_config(cfg: TrialConfig, bf16: bool) -> dict:
    return {
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "gradient_clipping": cfg.grad_clip,
        "zero_optimization": {"stage": cfg.zero_stage, "stage3_gather_16bit_weights_on_model_save": True},
        "bf16": {"enabled": bf16},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


def _inject_fault(cfg: TrialConfig, step: int, rank: int, resumed: bool, loss: torch.Tensor):
    fault = cfg.fault
    if fault is None or (fault.only_first_attempt and resumed):
        return loss
    if fault.raise_at_step == step:
        raise RuntimeError(f"injected fault: trial raised at step {step}")
    if fault.kill_worker_at_step == step and rank == 1:
        os._exit(1)
    if fault.nan_at_step == step:
        return loss * float("nan")
    if fault.oom_at_step == step:
        # A real allocator failure (asks for 1 PiB: refused at once, nothing is touched).
        torch.empty(2**48, dtype=torch.float32, device=loss.device)
    return loss


def train_loop_per_worker(loop_config: dict) -> None:
    """Ray Train entry point. ``loop_config`` holds: trial (TrialConfig), data (DataSpec or
    TokenBlocks), and optionally evaluator + base (milestone evals) and logger (RunLogger)."""
    import ray.train
    import ray.train.torch

    cfg: TrialConfig = loop_config["trial"]
    evaluator = loop_config.get("evaluator")
    base_result = loop_config.get("base")
    logger = loop_config.get("logger")
    stop_key = loop_config.get("stop_key")
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(_threads_for(cfg))
    if not cfg.use_gpu and os.environ.get(MMAP_THRESHOLD_ENV):
        limit_heap_retention(int(os.environ[MMAP_THRESHOLD_ENV]))
    eval_threads = _threads_for(cfg) * (1 if cfg.use_gpu or cfg.backend == "deepspeed" and cfg.zero_stage == 3
                                        else ctx.get_local_world_size())
    device = ray.train.torch.get_device() if cfg.use_gpu else torch.device("cpu")
    bf16 = cfg.use_gpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    zero3 = cfg.backend == "deepspeed" and cfg.zero_stage == 3

    # Model and method. Same seed on every rank: identical init for tiny random models.
    torch.manual_seed(cfg.seed)
    model = load_model(cfg.model, dtype=torch.float32, seed=cfg.seed)
    undo_patches = []
    if cfg.attention_dropout or cfg.hidden_dropout:
        from lfl_ray.regularization.dropout import apply_model_dropout

        apply_model_dropout(model, cfg.attention_dropout, cfg.hidden_dropout)
    model, description = apply_method(model, cfg.method)
    if cfg.hiddenkey is not None:
        from lfl_ray.regularization.hiddenkey import enable_hiddenkey

        undo_patches.append(enable_hiddenkey(model, cfg.hiddenkey))
    if cfg.activation_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    model.config.use_cache = False
    torch.manual_seed(cfg.seed * 1000 + rank)  # per-rank dropout masks

    # Restore before wrapping: under ZeRO-3 DeepSpeed partitions what it is given.
    checkpoint = ray.train.get_checkpoint()
    state = {"step": 0, "tokens": 0}
    optim_restored = False
    stream = BatchStream(resolve_train_blocks(loop_config["data"]).shard(rank, world),
                         cfg.micro_batch_size, cfg.seed + rank)
    inner = LossModule(model, cfg.loss_chunk_size, cfg.hiddenkey)
    optimizer = build_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay, betas=cfg.betas,
                                loraplus_lr_ratio=getattr(cfg.method, "loraplus_lr_ratio", None),
                                fused=cfg.backend == "ddp")
    scheduler = build_scheduler(optimizer, cfg.schedule, cfg.total_steps, cfg.warmup_steps,
                                floor=cfg.min_lr_ratio, cooldown=cfg.cooldown_steps)
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = load_checkpoint(Path(folder), model, optimizer if cfg.backend == "ddp" else None,
                                    scheduler if cfg.backend == "ddp" else None)
            optim_restored = cfg.backend == "ddp" and (Path(folder) / "optimizer.pt").exists()
    resumed = state["step"] > 0
    if resumed and not optim_restored:
        for _ in range(state["step"]):
            scheduler.step()

    if cfg.backend == "deepspeed":
        import deepspeed

        os.environ.setdefault("DS_ACCELERATOR", "cuda" if cfg.use_gpu else "cpu")
        engine, optimizer, _, scheduler = deepspeed.initialize(
            model=inner, optimizer=optimizer, lr_scheduler=scheduler,
            config=_deepspeed_config(cfg, bf16), dist_init_required=False)
        forward = engine
    else:
        inner = inner.to(device)
        forward = ray.train.torch.prepare_model(inner, move_to_device=False) if world > 1 else inner
        engine = None

    tokens_per_step = cfg.global_batch_size * stream.blocks.seq_len
    step, tokens = state["step"], state["tokens"]
    window_start, window_tokens, window_loss, window_count = time.perf_counter(), 0, 0.0, 0
    if rank == 0 and logger is not None and not resumed:
        logger.log_metrics({"trainable_params": description.trainable_params,
                            "trainable_fraction": description.trainable_fraction}, step=0)
    model.train()
    while step < cfg.total_steps:
        step_loss_sum = torch.zeros((), dtype=torch.float64)
        step_count = torch.zeros((), dtype=torch.float64)
        for micro in range(cfg.grad_accum):
            batch = stream.batch(step * cfg.grad_accum + micro)
            batch = {k: v.to(device) for k, v in batch.items()}
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
                loss_sum, count = forward(**batch)
            # Mean over loss tokens of this micro-batch, averaged over micro-batches and ranks.
            loss = loss_sum / count.clamp(min=1) / cfg.grad_accum
            loss = _inject_fault(cfg, step + 1, rank, resumed, loss)
            if not torch.isfinite(loss.detach()):
                raise NonFiniteLossError(
                    f"loss became {loss.item()} at step {step + 1} (lr {cfg.lr:g}): stopping this trial; "
                    "lower the learning rate or check the data")
            if engine is not None:
                engine.backward(loss)
                engine.step()
            elif world > 1 and micro < cfg.grad_accum - 1:
                with forward.no_sync():
                    loss.backward()
            else:
                loss.backward()
            step_loss_sum += loss_sum.detach().double().cpu()
            step_count += count.detach().double().cpu()
        if engine is None:
            torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        step += 1
        tokens += tokens_per_step
        window_tokens += tokens_per_step
        window_loss += float(step_loss_sum)
        window_count += float(step_count)

        at_milestone = step in cfg.eval_steps
        if step % cfg.report_every == 0 or at_milestone:
            elapsed = time.perf_counter() - window_start
            metrics = {"step": step, "tokens": tokens,
                       "train_loss": window_loss / max(window_count, 1.0),
                       "lr": scheduler.get_last_lr()[0] if hasattr(scheduler, "get_last_lr") else cfg.lr,
                       "tokens_per_s": window_tokens / max(elapsed, 1e-9)}
            if rank == 0 and logger is not None:
                logger.log_metrics({k: v for k, v in metrics.items() if k not in ("step", "tokens")}, step=tokens)
            checkpoint_dir = None
            if at_milestone:
                metrics["milestone"] = cfg.eval_steps.index(step) + 1
                metrics.update(_evaluate(evaluator, base_result, model, cfg, rank, world, zero3, logger, tokens,
                                         eval_threads))
                checkpoint_dir = _save(model, optimizer, scheduler, cfg, rank, zero3, step, tokens)
            from ray.train import Checkpoint

            ray.train.report(metrics, checkpoint=Checkpoint.from_directory(checkpoint_dir)
                             if checkpoint_dir and rank == 0 else None)
            if checkpoint_dir:  # the report returns once Ray has copied it to the run's storage
                shutil.rmtree(Path(checkpoint_dir).parent, ignore_errors=True)
            window_start, window_tokens, window_loss, window_count = time.perf_counter(), 0, 0.0, 0
            if stop_requested(stop_key):
                break
    for undo in undo_patches:
        undo()


def _evaluate(evaluator, base_result, model, cfg, rank, world, zero3, logger, tokens,
              eval_threads: int) -> dict:
    """Milestone evaluation. With ``split_loss_evals`` (default: DDP on GPUs) every rank
    scores its slice of the loss suites' blocks and rank 0 joins them. Rank 0 runs the
    other suites; on CPU it borrows its node's cores while the other ranks wait at the
    barrier. Under ZeRO-3, whose forward gathers parameters from every rank, all ranks run
    every suite in step."""
    if evaluator is None:
        return {}
    import torch.distributed as dist

    from lfl_ray.eval.spec import LOSS_SUITES
    from lfl_ray.eval.suites import join_loss_shards

    split = (cfg.use_gpu if cfg.split_loss_evals is None else cfg.split_loss_evals)
    split = split and world > 1 and not zero3 and dist.is_initialized()
    losses = [s for s in evaluator.spec.suites if s in LOSS_SUITES] if split else []
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

            torch.set_num_threads(eval_threads)
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
            logger.log_metrics(metrics, step=tokens)
            logger.log_json(result.to_json(), f"evals/milestone_{tokens}.json")
    if world > 1 and dist.is_initialized():
        dist.barrier()
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(float(v))}


def _save(model, optimizer, scheduler, cfg, rank, zero3, step, tokens):
    if not cfg.save_checkpoints:
        return None
    folder = Path(tempfile.mkdtemp(prefix=f"lfl-ckpt-{step}-")) / "checkpoint"
    save_checkpoint(folder, model, optimizer if cfg.backend == "ddp" else None,
                    scheduler if cfg.backend == "ddp" else None, {"step": step, "tokens": tokens},
                    zero3=zero3, is_writer=rank == 0, save_optimizer=cfg.save_optimizer_state)
    return str(folder)  # every rank's temporary folder; rank 0's is the one reported
