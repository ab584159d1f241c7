"""From a SweepSpec to trial points, and from a point to a TrialConfig.

A *point* is a plain JSON-able dict (it travels through Ray Tune and becomes MLflow
params): method settings, learning rate, regularizers, seed, plus a readable ``family``
(how the analysis groups it) and a unique ``key`` (the trial's stable name, used to find
its MLflow run and its Ray Train storage on resume).
"""

from __future__ import annotations

import itertools
from dataclasses import asdict
from typing import Any

from lfl_ray.methods import Full, Lora
from lfl_ray.sweep.spec import SweepSpec
from lfl_ray.train.config import TrialConfig


def _targets_label(targets) -> str:
    return targets if isinstance(targets, str) else "+".join(targets)


def family_of(point: dict) -> str:
    """How the analysis groups a trial: full, full+wd, full+dropout, lora-r16-all, ..."""
    if point["method"] == "full":
        parts = ["full"]
        if point["weight_decay"] > 0:
            parts.append("wd")
        if point["attention_dropout"] > 0 or point["hidden_dropout"] > 0:
            parts.append("dropout")
        return "+".join(parts)
    name = f"lora-r{point['rank']}-{point['targets']}"
    for flag, label in (("use_rslora", "rslora"), ("use_dora", "dora"), ("hiddenkey", "hiddenkey")):
        if point.get(flag):
            name += f"+{label}"
    if point.get("loraplus_lr_ratio"):
        name += "+loraplus"
    if point.get("lora_dropout"):
        name += "+dropout"
    if point.get("weight_decay"):
        name += "+wd"
    return name


def key_of(point: dict) -> str:
    """Unique, filesystem-safe trial name."""
    if point["method"] == "full":
        key = f"full-lr{point['lr']:.0e}-wd{point['weight_decay']:g}-ad{point['attention_dropout']:g}" \
              f"-hd{point['hidden_dropout']:g}"
    else:
        key = f"lora-r{point['rank']}-{point['targets']}-a{point['alpha']:g}-lr{point['lr']:.0e}"
        for flag in ("use_rslora", "use_dora"):
            if point[flag]:
                key += f"-{flag[4:]}"
        if point["lora_dropout"]:
            key += f"-do{point['lora_dropout']:g}"
        if point["loraplus_lr_ratio"]:
            key += f"-lp{point['loraplus_lr_ratio']:g}"
        if point["weight_decay"]:
            key += f"-wd{point['weight_decay']:g}"
        if point["hiddenkey"]:
            hk = point["hiddenkey"]
            key += f"-hk{hk['key_dropout']:g}-{hk['hidden_dropout']:g}-{hk['kl_weight']:g}"
    return f"{key}-s{point['seed']}".replace("+", "p")


def _full_point(lr, wd, ad, hd, seed) -> dict:
    point = {"method": "full", "lr": float(lr), "weight_decay": float(wd), "attention_dropout": float(ad),
             "hidden_dropout": float(hd), "seed": int(seed), "rank": 0, "alpha": 0.0, "targets": "",
             "lora_dropout": 0.0, "use_rslora": False, "use_dora": False, "loraplus_lr_ratio": 0.0,
             "hiddenkey": None}
    point["family"], point["key"] = family_of(point), key_of(point)
    return point


def _lora_point(grid, rank, lr, targets, dropout, dora, ratio, wd, hk, seed) -> dict:
    alpha = 2.0 * rank if grid.alpha_rule == "2r" else float(grid.fixed_alpha)
    point = {"method": "lora", "lr": float(lr), "weight_decay": float(wd), "attention_dropout": 0.0,
             "hidden_dropout": 0.0, "seed": int(seed), "rank": int(rank), "alpha": alpha,
             "targets": _targets_label(targets), "lora_dropout": float(dropout),
             "use_rslora": grid.alpha_rule == "rslora", "use_dora": bool(dora),
             "loraplus_lr_ratio": float(ratio or 0.0),
             "hiddenkey": asdict(hk) if hk is not None else None}
    point["family"], point["key"] = family_of(point), key_of(point)
    return point


def grid_points(spec: SweepSpec) -> list[dict]:
    """Every trial of a grid search, full-FT baselines first, in a stable order."""
    points: list[dict] = []
    for seed in spec.seeds:
        for grid in spec.full:
            for lr, wd, ad, hd in itertools.product(grid.lrs, grid.weight_decays, grid.attention_dropouts,
                                                    grid.hidden_dropouts):
                points.append(_full_point(lr, wd, ad, hd, seed))
        for grid in spec.lora:
            for combo in itertools.product(grid.ranks, grid.lrs, grid.targets, grid.dropouts, grid.use_dora,
                                           grid.loraplus_ratios, grid.weight_decays, grid.hiddenkey):
                points.append(_lora_point(grid, *combo, seed))
    unique: dict[str, dict] = {}
    for p in points:
        unique.setdefault(p["key"], p)
    return list(unique.values())


def search_space(spec: SweepSpec) -> dict[str, Any]:
    """Ray Tune search space for optuna/pareto: method x lr (log-uniform per method) x rank x targets."""
    from ray import tune

    methods = (["full"] if spec.full else []) + (["lora"] if spec.lora else [])
    space: dict[str, Any] = {"method": tune.choice(methods), "seed": tune.choice(list(spec.seeds))}
    if spec.full:
        lrs = [lr for g in spec.full for lr in g.lrs]
        space["lr_full"] = tune.loguniform(min(lrs), max(lrs) * (1.0001 if min(lrs) == max(lrs) else 1))
    if spec.lora:
        lrs = [lr for g in spec.lora for lr in g.lrs]
        space["lr_lora"] = tune.loguniform(min(lrs), max(lrs) * (1.0001 if min(lrs) == max(lrs) else 1))
        space["rank"] = tune.choice(sorted({r for g in spec.lora for r in g.ranks}))
        space["targets"] = tune.choice(sorted({_targets_label(t) for g in spec.lora for t in g.targets}))
    return space


def point_from_sample(spec: SweepSpec, sample: dict) -> dict:
    """The trial point for one optuna/pareto sample (other settings from the first grid)."""
    if sample["method"] == "full":
        grid = spec.full[0]
        return _full_point(sample["lr_full"], grid.weight_decays[0], grid.attention_dropouts[0],
                           grid.hidden_dropouts[0], sample["seed"])
    grid = spec.lora[0]
    targets = next(t for g in spec.lora for t in g.targets if _targets_label(t) == sample["targets"])
    return _lora_point(grid, sample["rank"], sample["lr_lora"], targets, grid.dropouts[0], grid.use_dora[0],
                       grid.loraplus_ratios[0], grid.weight_decays[0], grid.hiddenkey[0], sample["seed"])


def method_of(point: dict):
    if point["method"] == "full":
        return Full()
    targets = point["targets"]
    if targets not in ("attention", "mlp", "all"):
        targets = tuple(targets.split("+"))
    return Lora(rank=point["rank"], alpha=point["alpha"], targets=targets, dropout=point["lora_dropout"],
                use_rslora=point["use_rslora"], use_dora=point["use_dora"],
                loraplus_lr_ratio=point["loraplus_lr_ratio"] or None)


def trial_config(spec: SweepSpec, point: dict, fault=None) -> TrialConfig:
    """The TrialConfig of one point of ``spec``."""
    hiddenkey = None
    if point.get("hiddenkey"):
        from lfl_ray.regularization.hiddenkey import HiddenKeyConfig

        hiddenkey = HiddenKeyConfig(**point["hiddenkey"])
    b, r = spec.budget, spec.resources
    return TrialConfig(
        model=spec.model, method=method_of(point), lr=point["lr"], optimizer=spec.optimizer,
        weight_decay=point["weight_decay"], schedule=b.schedule, warmup_steps=b.warmup_steps,
        cooldown_steps=b.cooldown_steps, micro_batch_size=b.micro_batch_size,
        global_batch_size=b.global_batch_size, total_steps=b.steps, milestones=tuple(b.milestones),
        report_every=max(1, min(5, b.steps // 4)), num_workers=r.num_workers, use_gpu=r.use_gpu,
        cpus_per_worker=r.cpus_per_worker, backend=r.backend, zero_stage=r.zero_stage, seed=point["seed"],
        attention_dropout=point["attention_dropout"], hidden_dropout=point["hidden_dropout"],
        hiddenkey=hiddenkey, fault=fault,
    ).validate()


def point_params(point: dict, spec: SweepSpec) -> dict[str, Any]:
    """The MLflow params of a trial."""
    params = {k: v for k, v in point.items() if k not in ("hiddenkey", "key", "family")}
    params["hiddenkey"] = bool(point.get("hiddenkey"))
    if point.get("hiddenkey"):
        params.update({f"hiddenkey_{k}": v for k, v in point["hiddenkey"].items()})
    params.update({"model": spec.model, "regime": spec.regime, "optimizer": spec.optimizer,
                   "tokens": spec.budget.total_tokens, "steps": spec.budget.steps,
                   "learning_metric": getattr(spec.eval, "learning_metric", "heldout_loss"),
                   "forgetting_metric": getattr(spec.eval, "forgetting_metric", "general_loss")})
    return params
