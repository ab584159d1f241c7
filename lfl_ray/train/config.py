"""TrialConfig: everything one training trial needs, as one typed, validated value.

A sweep turns each point of its search space into a TrialConfig; Ray ships it to every
training worker. Steps are optimizer steps; tokens seen = steps x global batch x seq_len.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from lfl_ray.errors import ConfigError, require_choice, require_positive
from lfl_ray.methods import Full, Lora, Method
from lfl_ray.train.optim import OPTIMIZERS
from lfl_ray.train.schedule import SCHEDULES

BACKENDS = ("ddp", "deepspeed")


@dataclass(frozen=True)
class FaultInjection:
    """Test-only faults, so reliability tests break trials for real without mocks."""

    raise_at_step: int | None = None
    """Raise a RuntimeError when this optimizer step is reached."""
    nan_at_step: int | None = None
    """Make the loss NaN at this step (the NaN guard must stop the trial)."""
    oom_at_step: int | None = None
    """Ask the allocator for 1 PiB at this step: a real out-of-memory error in the loop."""
    config_error_at_step: int | None = None
    """Raise a ConfigError here (its type and message must survive Ray's pickling)."""
    asset_error_at_step: int | None = None
    """Raise an AssetMissingError here."""
    kill_worker_at_step: int | None = None
    """os._exit the rank-1 worker at this step (tests Ray Train's worker-group restart)."""
    hostile_completions: tuple[str, ...] = ()
    """Text that replaces the model's generations at every milestone eval (cycled over the
    prompts), so a test runs hostile programs through a trial's whole eval and sandbox."""
    only_first_attempt: bool = True
    """Inject only when the trial starts fresh (not when resumed from a checkpoint)."""


@dataclass(frozen=True)
class TrialConfig:
    """One trial: model, method, optimizer, schedule, batch, budget, backend, evals."""

    model: str = "tiny-llama"
    """Model spec (built-in alias, local folder or hub id)."""
    method: Method = field(default_factory=Full)
    """Full() or Lora(...)."""
    lr: float = 1e-4
    """Peak learning rate."""
    optimizer: str = "adamw"
    """'adamw' (default) or 'lion' (the paper's decoupled LionW)."""
    weight_decay: float = 0.0
    """Decoupled weight decay on matrices (biases and norms never decay)."""
    betas: tuple[float, float] | None = None
    """Optimizer betas; None = (0.9, 0.999) for AdamW, (0.9, 0.95) for Lion as in the paper."""
    schedule: str = "cosine"
    """'cosine' (IFT: warmup then cosine to min_lr_ratio), 'inverse_sqrt' (CPT) or 'constant'."""
    warmup_steps: int = 5
    """Linear warmup steps."""
    min_lr_ratio: float = 0.01
    """Cosine floor as a fraction of the peak (the paper: 0.01)."""
    cooldown_steps: int = 0
    """Inverse-sqrt schedule: linear cooldown to 0 over the last steps."""
    grad_clip: float = 1.0
    """Gradient-norm clipping (the paper: 1.0)."""
    micro_batch_size: int = 4
    """Rows per worker per forward pass."""
    global_batch_size: int = 4
    """Rows per optimizer step over all workers (reached by gradient accumulation)."""
    total_steps: int = 20
    """Optimizer steps in the trial."""
    milestones: tuple[int, ...] = ()
    """Steps after which the evaluator runs and a checkpoint is saved (the last step always is)."""
    report_every: int = 5
    """Report training metrics every N steps (each report costs a Ray Train round trip)."""
    num_workers: int = 1
    """Ray Train workers."""
    use_gpu: bool = False
    """One GPU per worker; selects bf16 and NCCL."""
    cpus_per_worker: float = 1.0
    """CPU share of each worker (threads follow it)."""
    backend: str = "ddp"
    """'ddp' (torch DDP; gloo on CPU) or 'deepspeed' (ZeRO)."""
    zero_stage: int = 2
    """DeepSpeed ZeRO stage (2 or 3) when backend='deepspeed'."""
    activation_checkpointing: bool = False
    """Recompute activations in backward (less memory, ~30% more compute)."""
    split_loss_evals: bool | None = None
    """DDP ranks score slices of the loss suites' blocks at a milestone and rank 0 joins them.
    None = on GPUs only, where each rank has its own device. On CPU one rank with all the
    node's cores is as fast or faster (measured on 2 cores: 44-48 s vs 40-48 s a milestone;
    one process keeps one copy of the weights in cache)."""
    loss_chunk_size: int = 1024
    """Tokens per chunk when computing the LM-head loss (never materializes all logits); 0 = off."""
    seed: int = 0
    """Seed for the model init (tiny-llama), data order and dropout."""
    attention_dropout: float = 0.0
    """Attention-probability dropout (full-FT regularizer; architectures that support it)."""
    hidden_dropout: float = 0.0
    """Dropout on hidden representations (full-FT regularizer)."""
    hiddenkey: Any = None
    """A lfl_ray.regularization.hiddenkey.HiddenKeyConfig, or None."""
    save_checkpoints: bool = True
    """Save a checkpoint at each milestone (adapter for LoRA, weights for full)."""
    save_optimizer_state: bool = True
    """Keep optimizer state in checkpoints so a restarted trial resumes exactly."""
    fault: FaultInjection | None = None
    """Test-only fault injection."""

    def validate(self) -> "TrialConfig":
        if not isinstance(self.method, (Full, Lora)):
            raise ConfigError("method", self.method, "must be Full() or Lora(...)")
        self.method.validate()
        require_positive("lr", self.lr)
        require_choice("optimizer", self.optimizer, OPTIMIZERS)
        if not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0:
            raise ConfigError("weight_decay", self.weight_decay, "must be a number >= 0")
        require_choice("schedule", self.schedule, SCHEDULES)
        require_positive("micro_batch_size", self.micro_batch_size, integer=True)
        require_positive("global_batch_size", self.global_batch_size, integer=True)
        require_positive("total_steps", self.total_steps, integer=True)
        require_positive("num_workers", self.num_workers, integer=True)
        require_positive("report_every", self.report_every, integer=True)
        require_choice("backend", self.backend, BACKENDS)
        if self.backend == "deepspeed":
            require_choice("zero_stage", self.zero_stage, (2, 3))
        per_step = self.micro_batch_size * self.num_workers
        if self.global_batch_size % per_step:
            raise ConfigError("global_batch_size", self.global_batch_size,
                              f"must be a multiple of micro_batch_size x num_workers = {per_step}")
        for m in self.milestones:
            if not isinstance(m, int) or not 0 < m <= self.total_steps:
                raise ConfigError("milestones", self.milestones,
                                  f"must be steps in 1..total_steps={self.total_steps}")
        for name in ("attention_dropout", "hidden_dropout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ConfigError(name, value, "must be a number in [0, 1)")
        if self.warmup_steps < 0:
            raise ConfigError("warmup_steps", self.warmup_steps, "must be >= 0")
        return self

    @property
    def grad_accum(self) -> int:
        return self.global_batch_size // (self.micro_batch_size * self.num_workers)

    @property
    def eval_steps(self) -> tuple[int, ...]:
        """Sorted milestone steps, always including the last step."""
        return tuple(sorted(set(self.milestones) | {self.total_steps}))

    def with_(self, **changes) -> "TrialConfig":
        return replace(self, **changes)
