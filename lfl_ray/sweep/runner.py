"""run_sweep: check everything, print the plan, build data and base evals once, run Ray Tune,
and leave every trial's run in MLflow with its final status.

Order matters. Everything a user can get wrong is checked before Ray or MLflow starts (the
spec, the model's config, the machine's CPUs and GPUs, the stores). From the moment the
parent run exists, every failure ends it, and every child still RUNNING, in a final state
with the real cause: no run is left RUNNING.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from lfl_ray import mlflow_schema as schema
from lfl_ray.errors import ConfigError
from lfl_ray.mlflow_schema import Status
from lfl_ray.ray_runtime import check_dashboard_host
from lfl_ray.sweep import name_lock, preflight
from lfl_ray.sweep.cost import ASSUMED_MFU, trial_cost
from lfl_ray.sweep.outcome import SweepOutcome, describe_error
from lfl_ray.sweep.search import OBJECTIVE, SearchPlan, plan_search
from lfl_ray.sweep.spec import SweepSpec
from lfl_ray.sweep.trainable import SweepContext, run_trial_in_tune
from lfl_ray.tracking import default_tracking_uri
from lfl_ray.train.config import FaultInjection

FAULTS_ENV = "LFL_RAY_FAULTS"
"""Test-only: 'INDEX:KIND@STEP,...' with KIND in raise|nan|oom|kill|config|asset; INDEX = trial
order in the grid. 'config' and 'asset' raise lfl-ray's own error types inside the trial."""
FAULT_KINDS = {"raise": "raise_at_step", "nan": "nan_at_step", "oom": "oom_at_step",
               "kill": "kill_worker_at_step", "config": "config_error_at_step", "asset": "asset_error_at_step"}


def parse_faults(text: str | None, trials: list) -> dict[str, FaultInjection]:
    faults: dict[str, FaultInjection] = {}
    kinds = "|".join(FAULT_KINDS)
    for item in filter(None, (text or "").split(",")):
        match = re.fullmatch(rf"\s*(\d+):({kinds})@(\d+)\s*", item)
        if not match or int(match.group(1)) >= len(trials):
            raise ConfigError(FAULTS_ENV, item, f"must be INDEX:{kinds}@STEP with INDEX < {len(trials)}")
        index, kind, step = int(match.group(1)), match.group(2), int(match.group(3))
        faults[trials[index].key] = FaultInjection(**{FAULT_KINDS[kind]: step})
    return faults


def plan_table(spec: SweepSpec, plan: SearchPlan) -> str:
    """What the sweep will run, with a cost estimate (printed by --dry-run and before every sweep)."""
    lines = [f"sweep {spec.name!r}: regime {spec.regime}, model {spec.model}, data {spec.data_source}, "
             f"search {spec.search}, scheduler {spec.scheduler}",
             f"budget: {spec.budget.steps} steps x {spec.budget.global_batch_size} x {spec.budget.seq_len} tokens "
             f"= {spec.budget.total_tokens:,} tokens/trial; milestones at steps {list(spec.budget.milestones)}"]
    lines += plan.description
    if plan.trials is None:
        methods = (["full"] if spec.full else []) + (["lora"] if spec.lora else [])
        costs = [trial_cost(spec.model, m, spec.budget.total_tokens) for m in methods]
        per = " / ".join(f"{m} {c.flops / 1e15:.2f} PFLOPs, {c.cpu_hours:.2f} CPU-h" for m, c in zip(methods, costs))
        most = max(c.gpu_hours for c in costs)
        lines.append(f"{plan.num_samples} trials (sampled as the sweep runs); per trial: {per}; at most "
                     f"{plan.num_samples * most:.1f} H100-hours at {ASSUMED_MFU:.0%} MFU (training only)")
        return "\n".join(lines)
    lines.append(f"{'#':>3}  {'family':<28} {'lr':>9} {'wd':>6} {'seed':>4}  {'tokens':>12} {'PFLOPs':>9} "
                 f"{'GPU-h':>8} {'CPU-h':>7}  trial key")
    totals = [0, 0.0, 0.0, 0.0]
    for i, t in enumerate(plan.trials):
        cost = trial_cost(spec.model, t.method.name, spec.budget.total_tokens)
        totals = [totals[0] + cost.tokens, totals[1] + cost.flops, totals[2] + cost.gpu_hours,
                  totals[3] + cost.cpu_hours]
        lines.append(f"{i:>3}  {t.family:<28} {t.lr:>9.3g} {t.weight_decay:>6g} {t.seed:>4}  "
                     f"{cost.tokens:>12,} {cost.flops / 1e15:>9.2f} {cost.gpu_hours:>8.2f} {cost.cpu_hours:>7.2f}  {t.key}")
    lines.append(f"{len(plan.trials)} trials; {totals[0]:,} tokens; {totals[1] / 1e15:.1f} PFLOPs; "
                 f"{totals[2]:.1f} H100-hours at {ASSUMED_MFU:.0%} MFU (training only); "
                 f"{totals[3]:.2f} CPU-hours on a 2-core machine")
    return "\n".join(lines)


def _storage(storage_path: str | None) -> str:
    if storage_path and "://" in storage_path:
        return storage_path
    folder = Path(storage_path or Path.cwd() / "ray_results").expanduser().resolve()
    schema.check_writable("--storage-path", str(storage_path or folder), folder)
    return str(folder)


def _prepare_evals(spec: SweepSpec, log):
    """Build (and cache) the data, the held-out/general sets, the evaluator and base results."""
    from dataclasses import replace

    from lfl_ray.data import general_text, load_regime
    from lfl_ray.eval.milestone import MilestoneEvaluator
    from lfl_ray.eval.spec import EvalSpec

    data = spec.data_spec()
    regime = load_regime(data, log=log)
    log(f"[data] {spec.regime}: {len(regime.train)} train rows, {len(regime.heldout)} held-out rows")
    general = general_text(replace(data, heldout_blocks=spec.general_blocks))
    evaluator = MilestoneEvaluator(spec.eval or EvalSpec(), spec.model, regime.heldout, general)
    start = time.perf_counter()
    base = evaluator.base()
    log(f"[eval] base model evaluated in {time.perf_counter() - start:.0f} s (cached for every trial)")
    return data, regime, evaluator, base


def _check_name_free(tracking_uri: str, spec: SweepSpec, resume: bool, experiment_path: str, log) -> None:
    """Refuse a second sweep of a name whose parent run is still RUNNING (unless resuming)."""
    found = schema.client(tracking_uri).get_experiment_by_name(spec.name)
    if found is not None and not resume:
        running = schema.find_runs(tracking_uri, found.experiment_id,
                                   f"{schema.parent_filter()} and attributes.status = 'RUNNING'")
        if running:
            raise ConfigError("--name", spec.name, "is the name of a sweep that is still RUNNING "
                              f"(parent run {running[0].info.run_id}); pick another name, or --resume it "
                              "once it has stopped")
    if not resume and "://" not in experiment_path and (Path(experiment_path) / "tuner.pkl").exists():
        log(f"[sweep] note: {experiment_path} holds an earlier sweep named {spec.name!r}; this new sweep "
            "replaces its Tune state (its MLflow runs stay; use --resume to continue it instead)")


def run_sweep(spec: SweepSpec, *, tracking_uri: str | None = None, storage_path: str | None = None,
              resume: bool = False, dry_run: bool = False, max_concurrent: int | None = None,
              data=None, dashboard_host: str = "127.0.0.1", description: str = "",
              log=print) -> SweepOutcome | None:
    """Run ``spec`` on Ray Tune (local Ray or the cluster in RAY_ADDRESS); None on dry runs.
    ``dashboard_host`` is where a local Ray binds its dashboard (loopback unless asked)."""
    from dataclasses import replace

    from lfl_ray.progress import quiet_library_bars

    quiet_library_bars()
    if max_concurrent is not None:
        spec = replace(spec, resources=replace(spec.resources, max_concurrent=max_concurrent))
    spec.validate()
    check_dashboard_host(dashboard_host)
    address = os.environ.get("RAY_ADDRESS")
    preflight.check_model(spec, log=log)
    preflight.check_data(spec, log=log)
    plan = plan_search(spec)
    log(plan_table(spec, plan))
    try:
        preflight.check_resources(spec, address)
    except ConfigError as exc:
        if not dry_run:
            raise
        log(f"[check] this machine cannot run it as it is: {exc}")
    tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    preflight.check_sqlite_uri(tracking_uri)
    schema.check_tracking_uri(tracking_uri)
    storage = _storage(storage_path)
    experiment_path = f"{storage.rstrip('/')}/{spec.name}"
    if resume and "://" not in storage and not (Path(experiment_path) / "tuner.pkl").exists():
        raise ConfigError("--resume", spec.name, f"needs a previous sweep of that name in {storage} "
                          "(none found; run without --resume to start one)")
    faults = parse_faults(os.environ.get(FAULTS_ENV), plan.trials or [])
    if dry_run:
        return None
    if "://" not in storage:
        preflight.check_storage("--storage-path", str(storage_path or storage), Path(storage))
    preflight.prepare_store(tracking_uri)
    name_claim = name_lock.claim(tracking_uri, spec.name, experiment_path)  # held until the sweep ends
    try:
        return _run_claimed(spec, plan, tracking_uri=tracking_uri, storage=storage, experiment_path=experiment_path,
                            resume=resume, data=data, dashboard_host=dashboard_host, description=description,
                            faults=faults, address=address, log=log)
    finally:
        name_claim.release()


def _run_claimed(spec: SweepSpec, plan: SearchPlan, *, tracking_uri: str, storage: str, experiment_path: str,
                 resume: bool, data, dashboard_host: str, description: str, faults: dict, address: str | None,
                 log) -> SweepOutcome:
    """The sweep itself, once its name is claimed: Ray, the parent run, Tune, the final statuses."""
    _check_name_free(tracking_uri, spec, resume, experiment_path, log)

    from ray import tune

    from lfl_ray.ray_runtime import init_ray, placement_groups_left
    from lfl_ray.sweep.datasets import blocks_datasets, sweep_datasets
    from lfl_ray.sweep.progress import TrainingProgress
    from lfl_ray.sweep.status import TrialStatusCallback, reconcile

    started = time.perf_counter()
    init_ray(use_gpu=spec.resources.use_gpu, dashboard_host=dashboard_host, log=log)
    if address:
        preflight.check_cluster_resources(spec)
    experiment_id = schema.ensure_experiment(tracking_uri, spec.name,
                                             description=schema.experiment_description(spec, description))
    parent = schema.start_parent(tracking_uri, experiment_id, name=spec.name, regime=spec.regime,
                                 params=schema.flatten(spec.to_dict()), spec_json=spec.to_dict(), resume=resume)
    try:
        evaluator = base = None
        if data is None:
            data, regime, evaluator, base = _prepare_evals(spec, log)
            schema.log_base(tracking_uri, parent, base.metrics, base.to_json())
            # The rows every trial is measured on, so `lfl-ray eval --adapter RUN_ID` can measure again.
            schema.log_eval_data(tracking_uri, parent, evaluator.heldout, evaluator.general)
            datasets = sweep_datasets(data, regime, evaluator.general)
        else:
            datasets = blocks_datasets(data) if hasattr(data, "attention_mask") else ()
        # Train checkpoints live under the parent run: --resume (same parent) finds them, while a
        # new sweep of a reused name never picks up an old sweep's finished checkpoints.
        context = SweepContext(spec, tracking_uri, experiment_id, parent, data,
                               f"{experiment_path}/train/{parent}", evaluator, base, faults, datasets)
        trainable = tune.with_resources(tune.with_parameters(run_trial_in_tune, context=context), {"cpu": 0.01})
        callbacks = [TrialStatusCallback(spec, tracking_uri, experiment_id, parent), TrainingProgress(spec, log)]
        if resume:
            tuner = tune.Tuner.restore(experiment_path, trainable=trainable, resume_unfinished=True,
                                       resume_errored=True)
        else:
            tuner = tune.Tuner(trainable, param_space=plan.param_space,
                               tune_config=_tune_config(spec, plan),
                               run_config=_run_config(spec, storage, callbacks, plan))
        # Reports between milestones carry training metrics only; the scheduler and searcher
        # act on the milestone reports that carry `learning`/`forgetting`.
        os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
        # Ray's newer console output ignores a progress reporter; the classic one shows the
        # trial's method, lr, rank and targets as columns (plan.columns).
        os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
        results = tuner.fit()
        statuses, errors = reconcile(results, spec, tracking_uri, experiment_id, parent)
    except BaseException as exc:
        cause = describe_error(exc)
        for run in schema.running_trials(tracking_uri, experiment_id, parent):
            schema.end_run(tracking_uri, run.info.run_id, Status.FAILED, error=f"the sweep stopped: {cause}")
        schema.end_run(tracking_uri, parent, Status.FAILED, error=cause)
        if isinstance(exc, OSError) and cause.startswith("disk full"):
            raise OSError(exc.errno, cause) from exc
        raise
    if not address:  # a local cluster holds only this sweep's placement groups
        left = placement_groups_left()
        log(f"[ray] placement groups left: {len(left)}" + (f" ({', '.join(left)}; trial workers not released)" if left else ""))
    interrupted = sum(s == Status.INTERRUPTED for s in statuses.values())
    failed = {k: errors.get(k, "") for k, s in statuses.items() if s == Status.FAILED}
    if interrupted:
        schema.end_run(tracking_uri, parent, Status.INTERRUPTED)
    elif failed and Status.FINISHED not in statuses.values():
        schema.end_run(tracking_uri, parent, Status.FAILED, error=f"no trial finished; {len(failed)} failed")
    else:
        schema.end_run(tracking_uri, parent, Status.FINISHED)
    seconds = time.perf_counter() - started
    log(f"[sweep] {spec.name}: {sum(s == Status.FINISHED for s in statuses.values())} finished, "
        f"{sum(s == Status.EARLY_STOPPED for s in statuses.values())} early-stopped, "
        f"{len(failed)} failed" + (f", {interrupted} interrupted" if interrupted else "")
        + f" in {seconds:.0f} s; MLflow: {tracking_uri} (experiment {spec.name!r})")
    for key, error in failed.items():
        log(f"[sweep] FAILED {key}: {error.strip().splitlines()[-1] if error.strip() else 'no error recorded'}")
    log(f"[sweep] open the runs: lfl-ray ui --tracking-uri {tracking_uri}")
    if interrupted:
        log(f"[sweep] interrupted: run the same command with --resume to continue {spec.name!r} "
            "from the last checkpoints")
    return SweepOutcome(spec.name, tracking_uri, experiment_id, parent, experiment_path, statuses, seconds, failed)


def _tune_config(spec: SweepSpec, plan: SearchPlan):
    from ray import tune

    scheduler = None
    if spec.scheduler == "asha":
        from ray.tune.schedulers import ASHAScheduler

        metric, mode = OBJECTIVE
        scheduler = ASHAScheduler(time_attr="milestone", metric=metric, mode=mode, grace_period=1,
                                  max_t=len(spec.budget.milestones), reduction_factor=2)
    return tune.TuneConfig(search_alg=plan.search_alg, scheduler=scheduler, num_samples=plan.num_samples,
                           max_concurrent_trials=spec.resources.max_concurrent)


def _run_config(spec: SweepSpec, storage: str, callbacks: list, plan: SearchPlan):
    from ray import tune

    reporter = tune.CLIReporter(parameter_columns=plan.columns, metric_columns=PROGRESS_METRICS,
                                max_report_frequency=30, sort_by_metric=False)
    return tune.RunConfig(name=spec.name, storage_path=storage, callbacks=callbacks, progress_reporter=reporter,
                          failure_config=tune.FailureConfig(max_failures=spec.resources.max_failures))


PROGRESS_METRICS = {"milestone": "milestone", "tokens": "tokens", "train_loss": "train loss",
                    "learning": "learning", "forgetting": "forgetting"}
"""The result columns of Tune's progress table (a trial's reports carry these names)."""
