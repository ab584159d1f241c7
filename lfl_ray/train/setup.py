"""A worker's training set-up: model + method -> loss, optimizer, schedule -> restore -> wrap.

``build_training`` is the set-up half of the per-worker loop (``lfl_ray.train.loop``), and
the benchmarks call it too (``bench/trial_start.py`` times its phases, ``bench/memory.py``
measures memory after them), so what they measure is what a trial runs. It needs a Ray
Train context only to wrap for DDP (more than one worker) and to find a GPU.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from lfl_ray.allocator import MMAP_THRESHOLD_ENV, limit_heap_retention
from lfl_ray.methods import MethodDescription, apply_method
from lfl_ray.models import load_model
from lfl_ray.train.batches import BatchStream, resolve_train_blocks
from lfl_ray.train.checkpoint import load_checkpoint, save_checkpoint
from lfl_ray.train.config import TrialConfig
from lfl_ray.train.loss import LossModule
from lfl_ray.train.optim import build_optimizer
from lfl_ray.train.schedule import build_scheduler


def worker_threads(cfg: TrialConfig) -> int:
    """Torch threads of a training worker: ``LFL_RAY_THREADS``, else its CPU share."""
    forced = os.environ.get("LFL_RAY_THREADS")
    return int(forced) if forced else max(1, int(round(cfg.resources.cpus_per_worker)))


def uses_zero3(cfg: TrialConfig) -> bool:
    """DeepSpeed ZeRO-3: parameters are partitioned, so every rank takes part in each forward."""
    return cfg.resources.backend == "deepspeed" and cfg.resources.zero_stage == 3


def deepspeed_config(cfg: TrialConfig, bf16: bool) -> dict:
    """The DeepSpeed config of ``cfg`` (batch, accumulation, clipping, ZeRO stage)."""
    return {
        "train_micro_batch_size_per_gpu": cfg.budget.micro_batch_size,
        "gradient_accumulation_steps": cfg.grad_accum,
        "gradient_clipping": cfg.grad_clip,
        "zero_optimization": {"stage": cfg.resources.zero_stage, "stage3_gather_16bit_weights_on_model_save": True},
        "bf16": {"enabled": bf16},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }


@dataclass
class Training:
    """One worker's training, ready to step: what ``build_training`` returns.

    DDP and DeepSpeed differ only inside ``backward`` and ``optimizer_step``, so the loop
    reads the same for both."""

    cfg: TrialConfig
    model: torch.nn.Module
    """The (peft-)model; the loop evaluates and checkpoints it."""
    description: MethodDescription
    """Trainable and total parameter counts of the method."""
    loss_module: LossModule
    """Model + loss: (loss_sum, loss_token_count) of a batch."""
    forward: Callable
    """What a batch goes through: the loss module, its DDP wrapper or the DeepSpeed engine."""
    optimizer: Any
    scheduler: Any
    stream: BatchStream
    """This worker's micro-batches."""
    device: torch.device
    bf16: bool
    """bf16 autocast (GPUs that support it); fp32 otherwise."""
    rank: int
    world: int
    start_step: int = 0
    """Optimizer steps already done (restored from a checkpoint, else 0)."""
    start_tokens: int = 0
    """Tokens already trained on (all workers)."""
    engine: Any = None
    """The DeepSpeed engine (backend 'deepspeed'), else None."""
    undo: list[Callable[[], None]] = field(default_factory=list)
    """Undo the model patches (HiddenKey) when training ends."""

    @property
    def resumed(self) -> bool:
        """Whether this run continues a checkpoint."""
        return self.start_step > 0

    @property
    def zero3(self) -> bool:
        return uses_zero3(self.cfg)

    @property
    def tokens_per_step(self) -> int:
        return self.cfg.budget.global_batch_size * self.stream.blocks.seq_len

    @property
    def lr(self) -> float:
        """The scheduler's current learning rate (the peak where it does not say)."""
        return self.scheduler.get_last_lr()[0] if hasattr(self.scheduler, "get_last_lr") else self.cfg.lr

    def loss_of(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss_sum, loss_token_count) of the ``index``-th micro-batch of this worker."""
        batch = {k: v.to(self.device) for k, v in self.stream.batch(index).items()}
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.bf16):
            return self.forward(**batch)

    def backward(self, loss: torch.Tensor, *, last: bool) -> None:
        """Backward of one micro-batch; ``last``: the step's last one (DDP syncs gradients then)."""
        if self.engine is not None:
            # DeepSpeed accumulates itself: its step() only steps at accumulation boundaries.
            self.engine.backward(loss)
            self.engine.step()
        elif self.world > 1 and not last:
            with self.forward.no_sync():
                loss.backward()
        else:
            loss.backward()

    def optimizer_step(self) -> None:
        """Clip, step the optimizer and the schedule, clear gradients (DeepSpeed did it in backward)."""
        if self.engine is not None:
            return
        torch.nn.utils.clip_grad_norm_([p for p in self.model.parameters() if p.requires_grad], self.cfg.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)

    def save(self, step: int, tokens: int) -> str | None:
        """Save a checkpoint into a fresh temporary folder (all ranks must call); its path, or
        None when the trial saves none. Every rank gets a folder; rank 0's is the one to report.
        The last step's checkpoint has no optimizer state: nothing resumes a finished trial,
        and for full finetuning that state is twice the weights (SmolLM2: 1.1 GB, which Ray
        then copies again into the run's storage)."""
        if not self.cfg.save_checkpoints:
            return None
        ddp = self.cfg.resources.backend == "ddp"
        folder = Path(tempfile.mkdtemp(prefix=f"lfl-ckpt-{step}-")) / "checkpoint"
        save_checkpoint(folder, self.model, self.optimizer if ddp else None, self.scheduler if ddp else None,
                        {"step": step, "tokens": tokens}, zero3=self.zero3, is_writer=self.rank == 0,
                        save_optimizer=self.cfg.save_optimizer_state and step < self.cfg.budget.steps)
        return str(folder)

    def close(self) -> None:
        """Undo the model patches."""
        for undo in self.undo:
            undo()


def build_training(cfg: TrialConfig, data, *, rank: int = 0, world: int = 1, checkpoint=None,
                   mark: Callable[[str], None] | None = None) -> Training:
    """Set up one worker's training of ``cfg`` on ``data`` (DataSpec or TokenBlocks).

    ``checkpoint``: a ray.train.Checkpoint to resume from (or None). ``mark`` is called with
    each phase's name as it ends ("model_load", "method", "data", "loss_optim", "restore",
    "wrap"), for benchmarks that time or measure the phases."""
    mark = mark or (lambda phase: None)
    torch.set_num_threads(worker_threads(cfg))
    if not cfg.resources.use_gpu and os.environ.get(MMAP_THRESHOLD_ENV):
        limit_heap_retention(int(os.environ[MMAP_THRESHOLD_ENV]))
    if cfg.resources.use_gpu:
        import ray.train.torch

        device = ray.train.torch.get_device()
    else:
        device = torch.device("cpu")
    bf16 = cfg.resources.use_gpu and torch.cuda.is_available() and torch.cuda.is_bf16_supported()

    # Model and method. Same seed on every rank: identical init for tiny random models.
    torch.manual_seed(cfg.seed)
    model = load_model(cfg.model, dtype=torch.float32, seed=cfg.seed)
    mark("model_load")
    undo = []
    if cfg.attention_dropout or cfg.hidden_dropout:
        from lfl_ray.regularization.dropout import apply_model_dropout

        apply_model_dropout(model, cfg.attention_dropout, cfg.hidden_dropout)
    model, description = apply_method(model, cfg.method)
    if cfg.hiddenkey is not None:
        from lfl_ray.regularization.hiddenkey import enable_hiddenkey

        undo.append(enable_hiddenkey(model, cfg.hiddenkey))
    if cfg.activation_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    model.config.use_cache = False
    torch.manual_seed(cfg.seed * 1000 + rank)  # per-rank dropout masks
    mark("method")

    stream = BatchStream(resolve_train_blocks(data).shard(rank, world), cfg.budget.micro_batch_size, cfg.seed + rank)
    mark("data")
    inner = LossModule(model, cfg.loss_chunk_size, cfg.hiddenkey)
    optimizer = build_optimizer(model, cfg.optimizer, cfg.lr, cfg.weight_decay, betas=cfg.betas,
                                method=cfg.method, fused=cfg.resources.backend == "ddp")
    scheduler = build_scheduler(optimizer, cfg.budget.schedule, cfg.budget.steps, cfg.budget.warmup_steps,
                                floor=cfg.min_lr_ratio, cooldown=cfg.budget.cooldown_steps)
    mark("loss_optim")

    # Restore before wrapping: under ZeRO-3 DeepSpeed partitions what it is given.
    state = {"step": 0, "tokens": 0}
    optim_restored = False
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            state = load_checkpoint(Path(folder), model, optimizer if cfg.resources.backend == "ddp" else None,
                                    scheduler if cfg.resources.backend == "ddp" else None)
            optim_restored = cfg.resources.backend == "ddp" and (Path(folder) / "optimizer.pt").exists()
    if state["step"] > 0 and not optim_restored:
        for _ in range(state["step"]):
            scheduler.step()
    mark("restore")

    engine = None
    if cfg.resources.backend == "deepspeed":
        import deepspeed

        os.environ.setdefault("DS_ACCELERATOR", "cuda" if cfg.resources.use_gpu else "cpu")
        engine, optimizer, _, scheduler = deepspeed.initialize(
            model=inner, optimizer=optimizer, lr_scheduler=scheduler,
            config=deepspeed_config(cfg, bf16), dist_init_required=False)
        forward = engine
    else:
        inner = inner.to(device)
        if world > 1:
            import ray.train.torch

            forward = ray.train.torch.prepare_model(inner, move_to_device=False)
        else:
            forward = inner
    mark("wrap")
    return Training(cfg=cfg, model=model, description=description, loss_module=inner, forward=forward,
                    optimizer=optimizer, scheduler=scheduler, stream=stream, device=device, bf16=bf16, rank=rank,
                    world=world, start_step=state["step"], start_tokens=state["tokens"], engine=engine,
                    undo=undo)
