"""Writes synthetic sweeps into a real MLflow store, in exactly the sweep runner's layout.

This module is the executable reference of that layout (see ``lfl_ray/analysis/runs.py``):
- experiment = sweep name, created with an explicit ``artifact_location``;
- parent run: tag ``lfl.role=sweep``, params = flattened sweep spec, artifact
  ``sweep_spec.json``, base metrics ``base/<m>``, artifact ``evals/base.json``;
- one child run per trial: tags ``mlflow.parentRunId``, ``lfl.role=trial``, ``lfl.trial_key``
  (the runner's name for ``lfl.trial_id``; the reader takes either),
  ``lfl.family``, ``lfl.regime``, ``lfl.status``, ``lfl.checkpoint``; params below (strings);
  metrics with step = tokens seen: ``train_loss``, ``lr``, ``tokens_per_s`` along training and,
  at each milestone, ``learning(_se)``, ``forgetting(_se)``, every eval metric ``<m>``,
  ``<m>_delta``, ``<m>_delta_se`` and ``milestone``; artifact ``evals/milestone_<tokens>.json``
  = ``{"metrics", "items", "groups", "samples"}``.

Learning is ``heldout_loss`` base minus tuned; forgetting is ``general_loss`` tuned minus base.
Per-item values are built so that their means equal the logged metrics exactly.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

BASE = {"heldout_loss": 2.3, "general_loss": 3.9, "diversity_unique_frac": 0.80,
        "diversity_distinct_2": 0.60, "mc_mean": 0.40}


@dataclass
class FakeTrial:
    """What one synthetic trial learned and forgot at each milestone."""

    trial_id: str
    family: str
    params: dict
    """Child params (method, lr, rank, alpha, targets, seed...); the rest get defaults."""
    learning: list[float]
    forgetting: list[float]
    tokens: list[int] = field(default_factory=lambda: [1000, 2000, 4000])
    status: str = "FINISHED"
    checkpoint: str | None = None
    extra: dict[str, list[float]] = field(default_factory=dict)
    """More eval metrics per milestone, e.g. ``diversity_unique_frac``."""
    item_noise: float = 0.05
    """Spread of this trial's per-item deviations (the paired SEs come from it)."""


def default_params(params: dict) -> dict:
    method = params.get("method", "full")
    rank = params.get("rank", 16 if method == "lora" else None)
    out = {
        "method": method, "lr": 1e-4, "rank": rank,
        "alpha": 2 * rank if rank else None,
        "targets": "all" if method == "lora" else None,
        "use_rslora": False, "use_dora": False, "lora_dropout": 0.0, "loraplus_lr_ratio": 0.0,
        "weight_decay": 0.0, "hidden_dropout": 0.0, "attention_dropout": 0.0,
        "hiddenkey": False, "seed": 0, "optimizer": "adamw", "model": "tiny-llama",
        "learning_metric": "heldout_loss", "forgetting_metric": "general_loss",
    }
    out.update(params)
    return {k: str(v) for k, v in out.items()}


def _eval_json(metrics: dict, items: dict, n_items: int) -> dict:
    groups = {k: [f"doc{i // 2}" for i in range(n_items)] for k in items}
    return {"metrics": metrics, "items": {k: [float(x) for x in v] for k, v in items.items()},
            "groups": groups, "samples": [{"doc_id": 0, "text": "def f(): pass"}]}


def _centered(rng, n, scale):
    noise = rng.normal(0.0, scale, n)
    return noise - noise.mean()


def write_sweep(tracking_uri: str, artifact_root: str, name: str, trials: list[FakeTrial], *,
                n_items: int = 40, seed: int = 0, regime: str = "code_ift") -> str:
    """Create experiment ``name`` with a parent run and one child per trial; returns the parent id."""
    import mlflow
    from mlflow.entities import Metric, Param

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    experiment_id = client.create_experiment(name, artifact_location=f"{artifact_root}/{name}")
    rng = np.random.default_rng(seed)
    base_items = {"heldout_loss": BASE["heldout_loss"] + _centered(rng, n_items, 0.5),
                  "general_loss": BASE["general_loss"] + _centered(rng, n_items, 0.3)}
    now = int(time.time() * 1000)

    parent = client.create_run(experiment_id, run_name=name, tags={"lfl.role": "sweep"})
    parent_id = parent.info.run_id
    spec = {"name": name, "regime": regime, "model": "tiny-llama", "budget.tokens": 4000}
    client.log_batch(parent_id, params=[Param(k, str(v)) for k, v in spec.items()],
                     metrics=[Metric(f"base/{k}", v, now, 0) for k, v in BASE.items()])
    client.log_dict(parent_id, spec, "sweep_spec.json")
    client.log_dict(parent_id, _eval_json(dict(BASE), base_items, n_items), "evals/base.json")
    client.set_terminated(parent_id, "FINISHED")

    for trial in trials:
        params = default_params(trial.params)
        tags = {"mlflow.parentRunId": parent_id, "lfl.role": "trial",
                "lfl.trial_key": trial.trial_id, "lfl.family": trial.family,
                "lfl.regime": regime, "lfl.status": trial.status}
        if trial.checkpoint:
            tags["lfl.checkpoint"] = trial.checkpoint
        run = client.create_run(experiment_id, run_name=trial.trial_id, tags=tags)
        run_id = run.info.run_id
        metrics = []
        for step in range(0, trial.tokens[-1] + 1, max(trial.tokens[-1] // 8, 1)):
            metrics += [Metric("train_loss", 3.0 - step / 1e4, now, step),
                        Metric("lr", float(params["lr"]), now, step),
                        Metric("tokens_per_s", 5000.0, now, step)]
        trial_rng = np.random.default_rng(abs(hash(trial.trial_id)) % 2**32)
        for index, tokens in enumerate(trial.tokens):
            learning, forgetting = trial.learning[index], trial.forgetting[index]
            held = base_items["heldout_loss"] - learning + _centered(trial_rng, n_items, trial.item_noise)
            gen = base_items["general_loss"] + forgetting + _centered(trial_rng, n_items, trial.item_noise)
            se_l = float(np.std(base_items["heldout_loss"] - held, ddof=1) / np.sqrt(n_items))
            se_f = float(np.std(gen - base_items["general_loss"], ddof=1) / np.sqrt(n_items))
            values = {"learning": learning, "learning_se": se_l, "forgetting": forgetting,
                      "forgetting_se": se_f, "heldout_loss": float(held.mean()),
                      "heldout_loss_delta": float(held.mean()) - BASE["heldout_loss"],
                      "heldout_loss_delta_se": se_l, "general_loss": float(gen.mean()),
                      "general_loss_delta": float(gen.mean()) - BASE["general_loss"],
                      "general_loss_delta_se": se_f, "milestone": float(index)}
            for key, series in trial.extra.items():
                values[key] = series[index]
                values[f"{key}_delta"] = series[index] - BASE.get(key, 0.0)
                values[f"{key}_delta_se"] = 0.01
            metrics += [Metric(k, float(v), now, tokens) for k, v in values.items()]
            eval_metrics = {k: v for k, v in values.items()
                            if not k.startswith(("learning", "forgetting", "milestone"))}
            client.log_dict(run_id, _eval_json(eval_metrics, {"heldout_loss": held,
                                                              "general_loss": gen}, n_items),
                            f"evals/milestone_{tokens}.json")
        client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()], metrics=metrics)
        mlflow_status = {"FINISHED": "FINISHED", "FAILED": "FAILED"}.get(trial.status, "KILLED")
        client.set_terminated(run_id, mlflow_status)
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
        extra={"diversity_unique_frac": [0.7, 0.6, 0.5]})
    add("full-b", "full", {"method": "full", "lr": full_other}, 0.30, 0.25 if not flip else 0.04,
        extra={"diversity_unique_frac": [0.7, 0.6, 0.55]})
    add("full-wd", "full+wd", {"method": "full", "lr": full_best, "weight_decay": 0.1}, 0.45, 0.27,
        extra={"diversity_unique_frac": [0.7, 0.65, 0.6]})
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
                extra={"diversity_unique_frac": [0.8, 0.78, 0.77 if not flip else 0.4]})
            add(f"lora-r{rank}-{targets}-lowlr", f"lora-r{rank}-{targets}",
                {"method": "lora", "lr": lora_other, "rank": rank, "targets": targets},
                learn - 0.15, lora_forget * 0.5,
                extra={"diversity_unique_frac": [0.8, 0.79, 0.78 if not flip else 0.45]})
    # alpha: 2r (default) vs r at rank 16, all targets, best LR.
    add("lora-r16-all-alpha-r", "lora-r16-all",
        {"method": "lora", "lr": lora_best, "rank": 16, "alpha": 16, "targets": "all"},
        0.50 - gap[16] - 0.06 * s, lora_forget,
        extra={"diversity_unique_frac": [0.8, 0.78, 0.77]})
    # An early-stopped and a failed trial: shown in counts, never recommended.
    trials.append(FakeTrial("lora-r16-all-stopped", "lora-r16-all",
                            {"method": "lora", "lr": 1e-2, "rank": 16, "targets": "all"},
                            [0.01], [0.5], tokens=[1000], status="EARLY_STOPPED"))
    trials.append(FakeTrial("full-failed", "full", {"method": "full", "lr": 1e-2},
                            [0.9], [0.0], tokens=[1000], status="FAILED"))
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
