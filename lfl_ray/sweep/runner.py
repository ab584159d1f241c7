"""run_sweep: validate, print the plan, build data and base evals once, run Ray Tune, and
leave every trial's run in MLflow with its final status.

Order matters: everything a user can get wrong is checked before Ray or MLflow starts.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path

from lfl_ray.errors import ConfigError
from lfl_ray.ray_runtime import check_dashboard_host
from lfl_ray.sweep import mlflow_runs
from lfl_ray.sweep.cost import ASSUMED_MFU, trial_cost
from lfl_ray.sweep.space import grid_points
from lfl_ray.sweep.spec import SweepSpec
from lfl_ray.sweep.trainable import SweepContext, run_trial_in_tune
from lfl_ray.tracking import default_tracking_uri
from lfl_ray.train.config import FaultInjection

FAULTS_ENV = "LFL_RAY_FAULTS"
"""Test-only: 'INDEX:KIND@STEP,...' with KIND in raise|nan|oom|kill; INDEX = trial order in the grid."""


@dataclass
class SweepOutcome:
    """What a finished sweep left behind."""

    name: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    storage_path: str
    statuses: dict[str, str]
    """Trial key -> FINISHED / FAILED / EARLY_STOPPED / INTERRUPTED (Ctrl-C; --resume continues)."""
    seconds: float


def parse_faults(text: str | None, points: list[dict]) -> dict[str, FaultInjection]:
    faults: dict[str, FaultInjection] = {}
    for item in filter(None, (text or "").split(",")):
        match = re.fullmatch(r"\s*(\d+):(raise|nan|oom|kill)@(\d+)\s*", item)
        if not match or int(match.group(1)) >= len(points):
            raise ConfigError(FAULTS_ENV, item, f"must be INDEX:raise|nan|oom|kill@STEP with INDEX < {len(points)}")
        index, kind, step = int(match.group(1)), match.group(2), int(match.group(3))
        arg = {"raise": "raise_at_step", "nan": "nan_at_step", "oom": "oom_at_step",
               "kill": "kill_worker_at_step"}[kind]
        faults[points[index]["key"]] = FaultInjection(**{arg: step})
    return faults


def plan_table(spec: SweepSpec, points: list[dict]) -> str:
    """The trial table with a cost estimate (printed by --dry-run and before every sweep)."""
    lines = [f"sweep {spec.name!r}: regime {spec.regime}, model {spec.model}, data {spec.data_source}, "
             f"search {spec.search}, scheduler {spec.scheduler}",
             f"budget: {spec.budget.steps} steps x {spec.budget.global_batch_size} x {spec.budget.seq_len} tokens "
             f"= {spec.budget.total_tokens:,} tokens/trial; milestones at steps {list(spec.budget.milestones)}",
             f"{'#':>3}  {'family':<28} {'lr':>8} {'wd':>6} {'seed':>4}  {'tokens':>12} {'PFLOPs':>9} "
             f"{'GPU-h':>8} {'CPU-h':>7}  trial (every setting)"]
    totals = [0, 0.0, 0.0, 0.0]
    for i, p in enumerate(points):
        cost = trial_cost(spec.model, p["method"], spec.budget.total_tokens)
        totals = [totals[0] + cost.tokens, totals[1] + cost.flops, totals[2] + cost.gpu_hours,
                  totals[3] + cost.cpu_hours]
        lines.append(f"{i:>3}  {p['family']:<28} {p['lr']:>8.1e} {p['weight_decay']:>6g} {p['seed']:>4}  "
                     f"{cost.tokens:>12,} {cost.flops / 1e15:>9.2f} {cost.gpu_hours:>8.2f} {cost.cpu_hours:>7.2f}  {p['key']}")
    lines.append(f"{len(points)} trials; {totals[0]:,} tokens; {totals[1] / 1e15:.1f} PFLOPs; "
                 f"{totals[2]:.1f} H100-hours at {ASSUMED_MFU:.0%} MFU (training only); "
                 f"{totals[3]:.2f} CPU-hours on a 2-core machine")
    return "\n".join(lines)


def _storage(storage_path: str | None) -> str:
    if storage_path and "://" in storage_path:
        return storage_path
    folder = Path(storage_path or Path.cwd() / "ray_results").expanduser().resolve()
    mlflow_runs._check_writable("--storage-path", str(storage_path or folder), folder)
    return str(folder)


def _prepare_evals(spec: SweepSpec, log):
    """Build (and cache) the data, the held-out/general sets, the evaluator and base results."""
    from lfl_ray.data import DataSpec, general_text, load_regime
    from lfl_ray.eval.milestone import MilestoneEvaluator
    from lfl_ray.eval.spec import EvalSpec

    data = DataSpec(regime=spec.regime, source=spec.data_source, model=spec.model, seq_len=spec.budget.seq_len,
                    seed=0, max_train_blocks=spec.max_train_blocks, heldout_blocks=spec.heldout_blocks).validate()
    regime = load_regime(data, log=log)
    log(f"[data] {spec.regime}: {len(regime.train)} train rows, {len(regime.heldout)} held-out rows")
    general = general_text(replace(data, heldout_blocks=spec.general_blocks))
    evaluator = MilestoneEvaluator(spec.eval or EvalSpec(), spec.model, regime.heldout, general)
    start = time.perf_counter()
    base = evaluator.base()
    log(f"[eval] base model evaluated in {time.perf_counter() - start:.0f} s (cached for every trial)")
    return data, regime, evaluator, base


def run_sweep(spec: SweepSpec, *, tracking_uri: str | None = None, storage_path: str | None = None,
              resume: bool = False, dry_run: bool = False, max_concurrent: int | None = None,
              data=None, dashboard_host: str = "127.0.0.1", log=print) -> SweepOutcome | None:
    """Run ``spec`` on Ray Tune (local Ray or the cluster in RAY_ADDRESS); None on dry runs.
    ``dashboard_host`` is where a local Ray binds its dashboard (loopback unless asked)."""
    if max_concurrent is not None:
        spec = replace(spec, resources=replace(spec.resources, max_concurrent=max_concurrent))
    spec.validate()
    check_dashboard_host(dashboard_host)
    points = grid_points(spec)
    log(plan_table(spec, points if spec.search == "grid" else points[: spec.num_samples]))
    if dry_run:
        return None
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    mlflow_runs.check_tracking_uri(tracking_uri)
    storage = _storage(storage_path)
    experiment_path = f"{storage.rstrip('/')}/{spec.name}"
    if resume and "://" not in storage and not (Path(experiment_path) / "tuner.pkl").exists():
        raise ConfigError("--resume", spec.name, f"needs a previous sweep of that name in {storage} "
                          "(none found; run without --resume to start one)")
    faults = parse_faults(os.environ.get(FAULTS_ENV), points)

    from ray import tune

    from lfl_ray.ray_runtime import init_ray
    from lfl_ray.sweep.status import TrialStatusCallback, reconcile

    started = time.perf_counter()
    init_ray(use_gpu=spec.resources.use_gpu, dashboard_host=dashboard_host, log=log)
    experiment_id = mlflow_runs.ensure_experiment(tracking_uri, spec.name)
    parent = mlflow_runs.start_parent(tracking_uri, experiment_id, spec, resume=resume)
    evaluator = base = None
    if data is None:
        data, _regime, evaluator, base = _prepare_evals(spec, log)
        from lfl_ray.tracking import RunLogger

        parent_log = RunLogger(tracking_uri, parent)
        parent_log.log_metrics({f"base/{k}": v for k, v in base.metrics.items()}, step=0)
        parent_log.log_json(base.to_json(), "evals/base.json")
    # Train checkpoints live under the parent run: --resume (same parent) finds them, while a
    # new sweep of a reused name never picks up an old sweep's finished checkpoints.
    context = SweepContext(spec, tracking_uri, experiment_id, parent, data,
                           f"{experiment_path}/train/{parent}", evaluator, base, faults)
    trainable = tune.with_resources(tune.with_parameters(run_trial_in_tune, context=context), {"cpu": 0.01})
    callback = TrialStatusCallback(spec, tracking_uri, experiment_id, parent)
    if resume:
        tuner = tune.Tuner.restore(experiment_path, trainable=trainable, resume_unfinished=True,
                                   resume_errored=True)
    else:
        tuner = tune.Tuner(trainable, param_space=_param_space(spec, points),
                           tune_config=_tune_config(spec), run_config=_run_config(spec, storage, callback))
    # Reports between milestones carry training metrics only; the scheduler and searcher
    # act on the milestone reports that carry `learning`/`forgetting`.
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    try:
        results = tuner.fit()
        statuses = reconcile(results, spec, tracking_uri, experiment_id, parent)
    except BaseException as exc:
        mlflow_runs.end_run(tracking_uri, parent, "FAILED", error=f"{type(exc).__name__}: {exc}")
        raise
    interrupted = sum(s == "INTERRUPTED" for s in statuses.values())
    if interrupted:
        mlflow_runs.end_run(tracking_uri, parent, "KILLED", lfl_status="INTERRUPTED")
    else:
        mlflow_runs.end_run(tracking_uri, parent, "FINISHED")
    seconds = time.perf_counter() - started
    log(f"[sweep] {spec.name}: {sum(s == 'FINISHED' for s in statuses.values())} finished, "
        f"{sum(s == 'EARLY_STOPPED' for s in statuses.values())} early-stopped, "
        f"{sum(s == 'FAILED' for s in statuses.values())} failed"
        + (f", {interrupted} interrupted" if interrupted else "")
        + f" in {seconds:.0f} s; MLflow: {tracking_uri} (experiment {spec.name!r}); "
        "open the UI with `make mlflow-ui`")
    if interrupted:
        log(f"[sweep] interrupted: run the same command with --resume to continue {spec.name!r} "
            "from the last checkpoints")
    return SweepOutcome(spec.name, tracking_uri, experiment_id, parent, experiment_path, statuses, seconds)


def _param_space(spec: SweepSpec, points: list[dict]) -> dict:
    from ray import tune

    from lfl_ray.sweep.space import search_space

    if spec.search == "grid":
        return {"point": tune.grid_search(points)}
    return search_space(spec)


def _tune_config(spec: SweepSpec):
    from ray import tune

    search_alg, num_samples, metric, mode = None, 1, None, None
    if spec.search in ("optuna", "pareto"):
        from ray.tune.search.optuna import OptunaSearch

        if spec.search == "optuna":
            search_alg = OptunaSearch(metric="learning", mode="max", seed=spec.seeds[0])
        else:
            search_alg = OptunaSearch(metric=["learning", "forgetting"], mode=["max", "min"], seed=spec.seeds[0])
        num_samples = spec.num_samples
    scheduler = None
    if spec.scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        scheduler = ASHAScheduler(time_attr="milestone", metric="learning", mode="max", grace_period=1,
                                  max_t=len(spec.budget.milestones), reduction_factor=2)
    return tune.TuneConfig(search_alg=search_alg, scheduler=scheduler, num_samples=num_samples,
                           max_concurrent_trials=spec.resources.max_concurrent, metric=metric, mode=mode)


def _run_config(spec: SweepSpec, storage: str, callback):
    from ray import tune

    return tune.RunConfig(name=spec.name, storage_path=storage, callbacks=[callback],
                          failure_config=tune.FailureConfig(max_failures=spec.resources.max_failures))
