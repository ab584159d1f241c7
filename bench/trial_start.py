"""Trial start: seconds from a Tune trial's start, and from fit(), to its first optimizer step.

Three measurements per model and worker count:
- ``tune``: a one-trial Ray Tune run whose function trainable builds and fits the trial's
  TorchTrainer as a sweep does (``lfl_ray.sweep.trainable``, without the MLflow child run):
  seconds to the first optimizer step from ``Tuner.fit()`` (Tune's once-per-sweep set-up
  included), from the moment Ray began launching the trial's actor process (the trial's
  start), and from the trial turning RUNNING (its actor up);
- ``trial``: the real ``train_loop_per_worker`` (2 steps, report every step); the probe
  logger (probe.py) timestamps the moment training is ready and the first report, which
  comes right after the first optimizer step;
- ``breakdown``: a Ray Train function that runs the loop's own set-up
  (``lfl_ray.train.setup.build_training``) with a timestamp after each phase: worker group
  start (fit() -> first line on the worker), imports, model load, LoRA/full method, data (a
  cached DataSpec from disk, or in-memory TokenBlocks), loss + optimizer, DDP wrap (2
  workers), first optimizer step.

After the breakdown, Ray's own record of the processes that fit() started (state API: when the
raylet began launching each actor's process and when it registered) shows the chain of Ray
Train V2 processes a trial waits on: controller -> placement-group cleaner, synchronization
actor, training workers -> dataset manager (and Ray's preemption watcher, which lfl-ray turns
off on a local cluster: ``lfl_ray.ray_runtime``).

    .venv/bin/python bench/trial_start.py --models tiny smollm2 --workers 1 2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import MODELS, bench_method, median, save_results, synthetic_blocks, table  # noqa: E402
from probe import fit_with_probe, ship_by_value  # noqa: E402

TUNE_TRIAL_CPU = 0.01
TRAIN_PROCESSES = {"TrainController", "PlacementGroupCleaner", "SynchronizationActor", "RayTrainWorker",
                   "DatasetManager", "PreemptionWatcher", "_AutoscalingCoordinatorActor"}
PHASES = ("worker_group", "imports", "model_load", "method", "data", "loss_optim", "ddp", "first_step")
# build_training's phases under this bench's names; "restore" (no checkpoint here) counts into "ddp".
SETUP_PHASES = {"wrap": "ddp"}


def setup_phases(config: dict) -> None:
    """Ray Train function: the training loop's set-up (``build_training``), phase by phase,
    then one optimizer step (rank 0 writes the times)."""
    t = {"enter": time.time()}
    import psutil

    t["process_created"] = psutil.Process().create_time()

    import ray.train
    from lfl_ray.train.setup import build_training

    t["imports"] = time.time()
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()

    def mark(phase: str) -> None:
        t[SETUP_PHASES.get(phase, phase)] = time.time()

    run = build_training(config["trial"], config["data"], rank=rank, world=world, mark=mark)
    run.model.train()
    loss_sum, count = run.loss_of(0)
    run.backward(loss_sum / count, last=True)
    run.optimizer_step()
    t["first_step"] = time.time()
    if rank == 0:
        Path(config["out"]).write_text(json.dumps(t))


def breakdown(model: str, method: str, workers: int, data, cpus: float, storage: str, batch: int) -> dict:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    out = tempfile.mktemp(prefix="lfl-start-", suffix=".json")
    trainer = TorchTrainer(
        setup_phases,
        train_loop_config={"trial": trial_config(model, method, workers, cpus, batch), "data": data, "out": out},
        torch_config=TorchConfig(backend="gloo"),
        scaling_config=ScalingConfig(num_workers=workers, resources_per_worker={"CPU": cpus / workers}),
        run_config=RunConfig(name=f"start-{time.time_ns()}", storage_path=storage))
    start = time.time()
    result = trainer.fit()
    end = time.time()
    if result.error is not None:
        raise result.error
    t = json.loads(Path(out).read_text())
    row = {"worker_group": t["enter"] - start,
           # fit() -> the worker process exists (Train controller, placement group, actor
           # scheduling), then -> the loop's first line (Ray worker init, imports, the
           # actor's set-up, the gloo process group).
           "to_worker_process": t["process_created"] - start,
           "worker_process_to_loop": t["enter"] - t["process_created"]}
    prev = t["enter"]
    for phase in PHASES[1:]:
        row[phase] = t[phase] - prev
        prev = t[phase]
    row["to_first_step"] = t["first_step"] - start
    row["teardown"] = end - t["first_step"]
    return row


def process_timeline(since: float) -> list[dict]:
    """Actor processes started after ``since`` (seconds after it): launch begun, registered."""
    from ray.util.state import list_actors, list_workers

    classes = {a.pid: a.class_name for a in list_actors(detail=True, limit=10_000)}
    rows = []
    for w in list_workers(detail=True, limit=10_000):
        if w.pid in classes and w.worker_launch_time_ms and w.worker_launch_time_ms / 1000 >= since:
            rows.append({"process": classes[w.pid], "launch": w.worker_launch_time_ms / 1000 - since,
                         "registered": (w.worker_launched_time_ms or 0) / 1000 - since})
    return sorted(rows, key=lambda r: r["launch"])


def tune_trial(model: str, method: str, workers: int, data, cpus: float, storage: str, batch: int) -> dict:
    """One Tune trial that fits the trial's TorchTrainer, as ``run_trial_in_tune`` does."""
    from ray import tune

    from lfl_ray.train.trial import build_trainer
    from probe import ProbeLogger

    # The trial actor holds 0.01 CPU, as a sweep's do (run_sweep), so its workers get the rest.
    cfg = trial_config(model, method, workers, cpus - TUNE_TRIAL_CPU, batch)
    probe = ProbeLogger(tempfile.mktemp(prefix="lfl-probe-", suffix=".jsonl"))
    name = f"start-{time.time_ns()}"

    def trainable(config: dict) -> None:
        from ray.tune.integration.ray_train import TuneReportCallback

        result = build_trainer(cfg, data, name=name, storage_path=storage, logger=probe,
                               callbacks=[TuneReportCallback()]).fit()
        if result.error is not None:
            raise result.error

    class Running(tune.Callback):
        at: float | None = None

        def on_trial_start(self, iteration, trials, trial, **info):
            Running.at = time.time()

    tuner = tune.Tuner(tune.with_resources(trainable, {"cpu": TUNE_TRIAL_CPU}),
                       run_config=tune.RunConfig(name=name, storage_path=storage, callbacks=[Running()],
                                                 verbose=0))
    start = time.time()
    grid = tuner.fit()
    if grid.errors:
        raise grid.errors[0]
    first = next(r["t"] for r in probe.records() if "tokens_per_s" in r["metrics"])
    # Tune launches the trial's actor first; the processes after it are Ray Train's.
    trial_actor = next(p for p in process_timeline(start) if p["process"] not in TRAIN_PROCESSES)
    return {"from_tuner_fit": first - start, "from_trial_launch": first - start - trial_actor["launch"],
            "from_running": first - Running.at}


def trial_config(model: str, method: str, workers: int, cpus: float, batch: int):
    from lfl_ray.train.config import Budget, Resources, TrialConfig

    return TrialConfig(model=MODELS[model], method=bench_method(method), report_every=1,
                       budget=Budget(steps=2, milestones=(), micro_batch_size=batch // workers, global_batch_size=batch),
                       resources=Resources(num_workers=workers, cpus_per_worker=cpus / workers),
                       save_checkpoints=False)


def real_trial(model: str, method: str, workers: int, data, cpus: float, storage: str, batch: int) -> dict:
    cfg = trial_config(model, method, workers, cpus, batch)
    start, end, records = fit_with_probe(cfg, data, name=f"start-{time.time_ns()}", storage=storage)
    ready = next(r for r in records if "trainable_params" in r["metrics"])
    reports = [r for r in records if "tokens_per_s" in r["metrics"]]
    return {"ready": ready["t"] - start, "to_first_step": reports[0]["t"] - start,
            "step_s": reports[1]["t"] - reports[0]["t"] if len(reports) > 1 else None,
            "fit_s": end - start}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["tiny", "smollm2"])
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--method", choices=("full", "lora"), default="lora")
    parser.add_argument("--data", choices=("blocks", "dataspec"), default="dataspec",
                        help="in-memory TokenBlocks, or the smoke preset's cached DataSpec (read on each worker)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--cpus", type=float, default=2.0, help="CPUs of the trial (split over workers)")
    parser.add_argument("--reps", type=int, default=1)
    args = parser.parse_args(argv)

    from harness import start_ray

    ship_by_value()
    start = time.time()
    start_ray(int(args.cpus))
    ray_init_s = time.time() - start
    storage = tempfile.mkdtemp(prefix="lfl-bench-start-")
    rows, timelines = [], []
    for model in args.models:
        if args.data == "dataspec":
            from lfl_ray.data import DataSpec, load_regime

            data = DataSpec(regime="code_ift", source="offline", model=MODELS[model], seq_len=256,
                            max_train_blocks=160, heldout_blocks=12).validate()
            load_regime(data, log=lambda *_: None)  # build the cache once, as a sweep's driver does
        else:
            data = synthetic_blocks(64, 256)
        for workers in args.workers:
            parts, trials, tunes = [], [], []
            for rep in range(args.reps):
                print(f"[start] {model} {workers} worker(s) rep {rep + 1} ...", flush=True)
                tunes.append(tune_trial(model, args.method, workers, data, args.cpus, storage, args.batch))
                trials.append(real_trial(model, args.method, workers, data, args.cpus, storage, args.batch))
                since = time.time()
                parts.append(breakdown(model, args.method, workers, data, args.cpus, storage, args.batch))
            row = {"model": model, "workers": workers, "method": args.method}
            for prefix, runs in (("tune_", tunes), ("trial_", trials), ("", parts)):
                for key in runs[0]:
                    row[prefix + key] = median([r[key] for r in runs])
            rows.append(row)
            timelines.append((f"{model}, {workers} worker(s)", process_timeline(since)))
    print(f"\nTrial start (cached model, data={args.data}, {args.method}, {args.cpus:g} CPUs); ray.init took "
          f"{ray_init_s:.1f} s (once per sweep). Medians of {args.reps} rep(s), seconds.")
    print(table(rows, [("model", "model", ""), ("workers", "workers", ""),
                       ("tune_from_tuner_fit", "tune: Tuner.fit->1st step", ".1f"),
                       ("tune_from_trial_launch", "tune: trial actor launch->1st step", ".1f"),
                       ("tune_from_running", "tune: trial RUNNING->1st step", ".1f"),
                       ("trial_to_first_step", "trial: fit->1st step", ".1f"), ("trial_ready", "trial: fit->ready", ".1f"),
                       ("trial_fit_s", "trial fit (2 steps)", ".1f")]))
    print("\nBreakdown (same phases as the loop, timed on rank 0), seconds:")
    print(table(rows, [("model", "model", ""), ("workers", "workers", "")] +
                [(p, p, ".2f") for p in PHASES] + [("to_first_step", "total", ".1f"), ("teardown", "teardown", ".1f")]))
    print("\nWorker group split: fit() -> worker process created, and process created -> loop's first line:")
    print(table(rows, [("model", "model", ""), ("workers", "workers", ""),
                       ("to_worker_process", "fit->worker process", ".2f"),
                       ("worker_process_to_loop", "process->loop", ".2f")]))
    for label, timeline in timelines:
        print(f"\nProcesses the last breakdown's fit() started ({label}), seconds after fit():")
        print(table(timeline, [("process", "actor", ""), ("launch", "launch begun", ".2f"),
                               ("registered", "registered", ".2f")]))
    save_results("trial_start", rows, vars(args), {"ray_init_s": ray_init_s,
                                                   "timelines": dict(timelines)})
    return rows


if __name__ == "__main__":
    main()
