"""Writes synthetic sweeps into a real MLflow store through the sweep's own writer.

Every run, tag, param, metric and artifact goes through ``lfl_ray.mlflow_schema``'s writer,
and the milestone metrics come from the real ``MilestoneEvaluator.compare``, so the analysis
tests read exactly what a sweep leaves; a layout change the reader does not follow fails
them. Learning is ``heldout_loss`` base minus tuned; forgetting is ``general_loss`` tuned
minus base. Per-item values are built so that their means equal the given numbers exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lfl_ray import mlflow_schema as schema
from lfl_ray.mlflow_schema import Method, Param, Status
from lfl_ray.tracking import RunLogger

TOKENS_PER_STEP = 100
"""Training tokens per optimizer step of every synthetic trial (MLflow steps are optimizer
steps; the ``tokens`` metric gives each one's tokens)."""

BASE = {"heldout_loss": 2.3, "general_loss": 3.9, "diversity_unique": 0.80,
        "diversity_distinct_2": 0.60, "mc_mean": 0.40}
"""The base model's metrics (names as the eval suites emit them)."""


@dataclass
class FakeTrial:
    """What one synthetic trial learned and forgot at each milestone."""

    trial_id: str
    """The trial's key."""
    family: str
    params: dict
    """Child params (method, lr, rank, alpha, targets, seed...); the rest get defaults."""
    learning: list[float]
    forgetting: list[float]
    tokens: list[int] = field(default_factory=lambda: [1000, 2000, 4000])
    """Training tokens at each milestone (a multiple of ``TOKENS_PER_STEP``)."""
    status: str = Status.FINISHED
    checkpoint: str | None = None
    extra: dict[str, list[float]] = field(default_factory=dict)
    """More eval metrics per milestone, e.g. ``diversity_unique``."""
    item_noise: float = 0.05
    """Spread of this trial's per-item deviations (the paired SEs come from it)."""
    error: str | None = None
    """Error text of a FAILED trial (default: a made-up one)."""


def default_params(params: dict) -> dict:
    """A trial's params as ``TrialSpec.params()`` gives them plus the sweep's (LoRA-only
    fields only for LoRA)."""
    method = params.get(Param.METHOD, Method.FULL)
    out = {Param.METHOD: method, Param.LR: 1e-4, Param.SEED: 0, Param.WEIGHT_DECAY: 0.0,
           Param.OPTIMIZER: "adamw", Param.MODEL: "tiny-llama",
           Param.LEARNING_METRIC: "heldout_loss", Param.FORGETTING_METRIC: "general_loss"}
    if method == Method.LORA:
        rank = params.get(Param.RANK, 16)
        out.update({Param.RANK: rank, Param.ALPHA: 2 * rank, Param.TARGETS: "all",
                    Param.LORA_DROPOUT: 0.0, Param.USE_RSLORA: False, Param.USE_DORA: False,
                    Param.HIDDENKEY: False})
    else:
        out.update({Param.ATTENTION_DROPOUT: 0.0, Param.HIDDEN_DROPOUT: 0.0})
    out.update(params)
    return out


def _centered(rng, n, scale):
    noise = rng.normal(0.0, scale, n)
    return noise - noise.mean()


def _result(values: dict[str, np.ndarray], n_items: int):
    """An EvalResult whose metrics are the means of per-item values (with their SEs)."""
    from lfl_ray.eval.result import EvalResult

    metrics = {}
    for name, items in values.items():
        metrics[name] = float(items.mean())
        metrics[schema.se_metric(name)] = float(items.std(ddof=1) / np.sqrt(n_items))
    return EvalResult(metrics=metrics, items={k: [float(x) for x in v] for k, v in values.items()},
                      groups={k: [f"doc{i // 2}" for i in range(n_items)] for k in values},
                      samples=[{"suite": "heldout_loss", "prompt": "", "completion": "def f(): pass"}])


def _comparer():
    """The real evaluator's ``compare`` (learning = heldout_loss, forgetting = general_loss);
    no suite needs data, so it is built without any."""
    from lfl_ray.eval.milestone import MilestoneEvaluator
    from lfl_ray.eval.spec import EvalSpec

    return MilestoneEvaluator(EvalSpec(suites=("diversity",)), "tiny-llama", None, None,
                              require_primary=False)


def write_sweep(tracking_uri: str, name: str, trials: list[FakeTrial], *, n_items: int = 40,
                seed: int = 0, regime: str = "code_ift") -> str:
    """Write sweep ``name`` (experiment, parent run, one child per trial) with the sweep's
    writer; returns the parent run id."""
    rng = np.random.default_rng(seed)
    base_items = {k: v + _centered(rng, n_items, {"heldout_loss": 0.5, "general_loss": 0.3}.get(k, 0.02))
                  for k, v in BASE.items() if k != "mc_mean"}
    base = _result(base_items, n_items)
    base.metrics["mc_mean"] = BASE["mc_mean"]  # a mean of three suites: no items of its own
    evaluator = _comparer()

    experiment_id = schema.ensure_experiment(tracking_uri, name)
    spec = {"name": name, "regime": regime, "model": "tiny-llama", "budget": {"tokens": 4000}}
    parent_id = schema.start_parent(tracking_uri, experiment_id, name=name, regime=regime,
                                    params=schema.flatten(spec), spec_json=spec, resume=False)
    schema.log_base(tracking_uri, parent_id, base.metrics, base.to_json())

    for trial in trials:
        params = default_params(trial.params)
        run_id = schema.child_run(tracking_uri, experiment_id, parent_id, key=trial.trial_id,
                                  family=trial.family, regime=regime, params=params)
        logger = RunLogger(tracking_uri, run_id)
        schema.log_trainable_params(logger, 1000, 0.01)
        last_step = trial.tokens[-1] // TOKENS_PER_STEP
        for step in range(max(last_step // 8, 1), last_step + 1, max(last_step // 8, 1)):
            tokens = step * TOKENS_PER_STEP
            schema.log_training(logger, step=step, tokens=tokens, train_loss=3.0 - tokens / 1e4,
                                lr=float(params[Param.LR]), tokens_per_s=5000.0)
        trial_rng = np.random.default_rng(abs(hash(trial.trial_id)) % 2**32)
        for index, tokens in enumerate(trial.tokens):
            noise = trial.item_noise
            items = {"heldout_loss": base_items["heldout_loss"] - trial.learning[index]
                     + _centered(trial_rng, n_items, noise),
                     "general_loss": base_items["general_loss"] + trial.forgetting[index]
                     + _centered(trial_rng, n_items, noise)}
            for key, series in trial.extra.items():
                items[key] = series[index] + _centered(trial_rng, n_items, 0.02)
            result = _result(items, n_items)
            schema.log_milestone(logger, step=tokens // TOKENS_PER_STEP, tokens=tokens,
                                 metrics=evaluator.compare(result, base), eval_json=result.to_json())
        if trial.checkpoint:
            schema.set_checkpoint(tracking_uri, run_id, trial.checkpoint)
        error = trial.error or ("RuntimeError: synthetic failure" if trial.status == Status.FAILED else None)
        schema.end_run(tracking_uri, run_id, trial.status, error=error)
    schema.end_run(tracking_uri, parent_id, Status.FINISHED)
    return parent_id


def paper_like(flip: bool = False) -> list[FakeTrial]:
    """A sweep where the paper's claims hold (or, with ``flip``, where each one is reversed).

    Paper: full learns more and forgets more than LoRA; the best LoRA LR is ~10x full's;
    targets all > attention; the learning gap to full shrinks with rank; alpha = 2r is best.
    Flipped: LoRA learns more and forgets more; LoRA's best LR is 10x lower than full's;
    attention > all; LoRA learns less at higher rank; alpha = r beats 2r.
    """
    s = -1.0 if flip else 1.0
    trials = []

    def add(tid, family, params, learn, forget, **kw):
        trials.append(FakeTrial(tid, family, params, [learn * 0.4, learn * 0.7, learn],
                                [forget * 0.4, forget * 0.7, forget], **kw))

    # full FT: best LR 1e-5 (paper) or 1e-3 (flip).
    full_best, full_other = (1e-5, 1e-3) if not flip else (1e-3, 1e-5)
    add("full-a", "full", {"method": "full", "lr": full_best}, 0.50, 0.30 if not flip else 0.05,
        extra={"diversity_unique": [0.7, 0.6, 0.5]})
    add("full-b", "full", {"method": "full", "lr": full_other}, 0.30, 0.25 if not flip else 0.04,
        extra={"diversity_unique": [0.7, 0.6, 0.55]})
    add("full-wd", "full+wd", {"method": "full", "lr": full_best, "weight_decay": 0.1}, 0.45, 0.27,
        extra={"diversity_unique": [0.7, 0.65, 0.6]})
    # LoRA: best LR 1e-4 (paper: 10x full) or 1e-4 too while full's best is 1e-3 (flip: 0.1x).
    lora_best, lora_other = 1e-4, 1e-6
    gap = {16: 0.20, 64: 0.10} if not flip else {16: -0.20, 64: -0.05}
    lora_forget = 0.10 if not flip else 0.40
    for rank in (16, 64):
        for targets, penalty in (("all", 0.0), ("attention", 0.12 * s)):
            learn = 0.50 - gap[rank] - penalty
            add(f"lora-r{rank}-{targets}", f"lora-r{rank}-{targets}",
                {"method": "lora", "lr": lora_best, "rank": rank, "targets": targets},
                learn, lora_forget - 0.01 * (rank == 64),
                extra={"diversity_unique": [0.8, 0.78, 0.77 if not flip else 0.4]})
            add(f"lora-r{rank}-{targets}-lowlr", f"lora-r{rank}-{targets}",
                {"method": "lora", "lr": lora_other, "rank": rank, "targets": targets},
                learn - 0.15, lora_forget * 0.5,
                extra={"diversity_unique": [0.8, 0.79, 0.78 if not flip else 0.45]})
    # alpha: 2r (default) vs r at rank 16, all targets, best LR.
    add("lora-r16-all-alpha-r", "lora-r16-all",
        {"method": "lora", "lr": lora_best, "rank": 16, "alpha": 16, "targets": "all"},
        0.50 - gap[16] - 0.06 * s, lora_forget,
        extra={"diversity_unique": [0.8, 0.78, 0.77]})
    # An early-stopped and a failed trial: shown in counts, never recommended.
    trials.append(FakeTrial("lora-r16-all-stopped", "lora-r16-all",
                            {"method": "lora", "lr": 1e-2, "rank": 16, "targets": "all"},
                            [0.01], [0.5], tokens=[1000], status=Status.EARLY_STOPPED))
    trials.append(FakeTrial("full-failed", "full", {"method": "full", "lr": 1e-2},
                            [0.9], [0.0], tokens=[1000], status=Status.FAILED))
    return trials


def make_full_checkpoint(folder, scale: float = 0.002, seed: int = 1) -> str:
    """A real full-FT checkpoint of ``tiny-llama``: every linear weight nudged by dense noise."""
    import torch

    from lfl_ray.models import load_model

    model = load_model("tiny-llama")
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and not name.endswith("lm_head"):
                module.weight.add_(scale * torch.randn(module.weight.shape, generator=generator))
    model.save_pretrained(folder)
    return str(folder)


def make_lora_checkpoint(folder, rank: int = 4, targets="all", scale: float = 0.2,
                         seed: int = 2) -> str:
    """A real peft LoRA adapter on ``tiny-llama`` with non-zero (random) B matrices."""
    import torch

    from lfl_ray.methods import Lora, apply_method
    from lfl_ray.models import load_model

    model, _ = apply_method(load_model("tiny-llama"), Lora(rank=rank, targets=targets))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(scale * torch.randn(param.shape, generator=generator))
    model.save_pretrained(folder)
    return str(folder)
