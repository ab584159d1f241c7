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
class Budget:
    """How much each trial trains, and when it is evaluated (a sweep's, shared by its trials)."""

    steps: int = 60
    """Optimizer steps per trial."""
    seq_len: int = 256
    """Tokens per row."""
    micro_batch_size: int = 2
    """Rows per worker per forward (2 x the default 2 workers = the default global batch)."""
    global_batch_size: int = 4
    """Rows per optimizer step (accumulation fills the gap)."""
    milestones: tuple[int, ...] = (20, 40, 60)
    """Steps at which evals run and checkpoints are saved (the paper: epochs for IFT,
    token counts for CPT; here as steps, tokens = steps x global batch x seq_len)."""
    warmup_steps: int = 5
    """Linear warmup steps."""
    schedule: str = "cosine"
    """'cosine' (IFT) or 'inverse_sqrt' (CPT)."""
    cooldown_steps: int = 0
    """Inverse-sqrt cooldown steps."""

    @property
    def tokens_per_step(self) -> int:
        return self.global_batch_size * self.seq_len

    @property
    def total_tokens(self) -> int:
        return self.steps * self.tokens_per_step

    def validate(self) -> None:
        require_positive("budget.steps", self.steps, integer=True)
        require_positive("budget.seq_len", self.seq_len, integer=True)
        require_positive("budget.micro_batch_size", self.micro_batch_size, integer=True)
        require_positive("budget.global_batch_size", self.global_batch_size, integer=True)
        require_choice("budget.schedule", self.schedule, SCHEDULES)
        for m in self.milestones:
            if not isinstance(m, int) or m <= 0:
                raise ConfigError("budget.milestones", m, "every milestone must be a step > 0")
            if m > self.steps:
                raise ConfigError("budget.milestones", m,
                                  f"every milestone must be within the budget of {self.steps} steps")
        if list(self.milestones) != sorted(set(self.milestones)):
            raise ConfigError("budget.milestones", self.milestones, "must be increasing, without repeats")
        if isinstance(self.warmup_steps, bool) or not isinstance(self.warmup_steps, int) \
                or not 0 <= self.warmup_steps < self.steps:
            raise ConfigError("budget.warmup_steps", self.warmup_steps, f"must be an integer in [0, {self.steps})")
        if isinstance(self.cooldown_steps, bool) or not isinstance(self.cooldown_steps, int) \
                or not 0 <= self.cooldown_steps <= self.steps:
            raise ConfigError("budget.cooldown_steps", self.cooldown_steps,
                              f"must be an integer in [0, {self.steps}]")


@dataclass(frozen=True)
class Resources:
    """What each trial may use, and how many run at once."""

    num_workers: int = 2
    """Ray Train workers per trial (DDP/ZeRO ranks)."""
    cpus_per_worker: float = 0.99
    """CPU share per worker (0.99 x 2 fits one trial on a 2-CPU machine)."""
    use_gpu: bool = False
    """One GPU per worker."""
    backend: str = "ddp"
    """'ddp' or 'deepspeed'."""
    zero_stage: int = 3
    """ZeRO stage when backend='deepspeed'."""
    max_concurrent: int = 1
    """Trials running at once."""
    max_failures: int = 1
    """Retries of a failed trial (from its last checkpoint)."""

    def validate(self) -> None:
        require_positive("resources.num_workers", self.num_workers, integer=True)
        require_positive("resources.cpus_per_worker", self.cpus_per_worker)
        if not isinstance(self.use_gpu, bool):
            raise ConfigError("resources.use_gpu", self.use_gpu, "must be true or false")
        require_choice("resources.backend", self.backend, BACKENDS)
        if self.backend == "deepspeed":
            require_choice("resources.zero_stage", self.zero_stage, (2, 3))
        require_positive("resources.max_concurrent", self.max_concurrent, integer=True)
        if not isinstance(self.max_failures, int) or self.max_failures < 0:
            raise ConfigError("resources.max_failures", self.max_failures, "must be an integer >= 0")


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
    budget: Budget = field(default_factory=lambda: Budget(steps=20, milestones=()))
    """Steps, batch, milestones and schedule (the sweep's ``Budget``; a trial evaluates at its
    milestones and always at its last step)."""
    resources: Resources = field(default_factory=lambda: Resources(num_workers=1, cpus_per_worker=1.0,
                                                                  zero_stage=2))
    """Workers, CPUs/GPUs and backend (the sweep's ``Resources``)."""
    min_lr_ratio: float = 0.01
    """Cosine floor as a fraction of the peak (the paper: 0.01)."""
    grad_clip: float = 1.0
    """Gradient-norm clipping (the paper: 1.0)."""
    report_every: int = 5
    """Report training metrics every N steps (each report costs a Ray Train round trip)."""
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
    """Keep optimizer state in checkpoints so a restarted trial resumes exactly (all but the
    last step's: a finished trial is not resumed)."""
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
        self.budget.validate()
        self.resources.validate()
        require_positive("report_every", self.report_every, integer=True)
        per_step = self.budget.micro_batch_size * self.resources.num_workers
        if self.budget.global_batch_size % per_step:
            raise ConfigError("budget.global_batch_size", self.budget.global_batch_size,
                              f"must be a multiple of micro_batch_size x num_workers = {per_step}")
        for name in ("attention_dropout", "hidden_dropout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ConfigError(name, value, "must be a number in [0, 1)")
        return self

    @property
    def grad_accum(self) -> int:
        return self.budget.global_batch_size // (self.budget.micro_batch_size * self.resources.num_workers)

    @property
    def eval_steps(self) -> tuple[int, ...]:
        """Sorted milestone steps, always including the last step."""
        return tuple(sorted(set(self.budget.milestones) | {self.budget.steps}))

    def with_(self, **changes) -> "TrialConfig":
        return replace(self, **changes)
