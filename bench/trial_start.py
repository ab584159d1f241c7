"""Trial start: seconds from a Ray Train trial's fit() to its first optimizer step, and where they go.

Two measurements per model and worker count:
- ``trial``: the real ``train_loop_per_worker`` (2 steps, report every step); the probe
  logger (probe.py) timestamps the moment training is ready and the first report, which
  comes right after the first optimizer step;
- ``breakdown``: a Ray Train function that repeats the loop's set-up phases in order with a
  timestamp after each: worker group start (fit() -> first line on the worker), imports,
  model load, LoRA/full method, data (a cached DataSpec from disk, or in-memory TokenBlocks),
  loss + optimizer, DDP wrap (2 workers), first optimizer step.

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
from harness import MODELS, median, save_results, synthetic_blocks, table  # noqa: E402
from probe import fit_with_probe, ship_by_value  # noqa: E402

PHASES = ("worker_group", "imports", "model_load", "method", "data", "loss_optim", "ddp", "first_step")


def setup_phases(config: dict) -> None:
    """Ray Train function: the training loop's set-up, phase by phase (rank 0 writes the times)."""
    t = {"enter": time.time()}
    import psutil
    import torch

    t["process_created"] = psutil.Process().create_time()

    import ray.train
    import ray.train.torch
    from lfl_ray.methods import Full, Lora, apply_method
    from lfl_ray.models import load_model
    from lfl_ray.train.loop import BatchStream, resolve_train_blocks
    from lfl_ray.train.loss import LossModule
    from lfl_ray.train.optim import build_optimizer

    t["imports"] = time.time()
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch.set_num_threads(max(1, int(round(config["cpus_per_worker"]))))
    model = load_model(config["model"], dtype=torch.float32)
    t["model_load"] = time.time()
    model, _ = apply_method(model, Lora(rank=16, targets="all") if config["method"] == "lora" else Full())
    model.config.use_cache = False
    t["method"] = time.time()
    stream = BatchStream(resolve_train_blocks(config["data"]).shard(rank, world), config["micro"], rank)
    t["data"] = time.time()
    inner = LossModule(model)
    optimizer = build_optimizer(model, "adamw", 1e-4)
    t["loss_optim"] = time.time()
    forward = ray.train.torch.prepare_model(inner, move_to_device=False) if world > 1 else inner
    t["ddp"] = time.time()
    loss_sum, count = forward(**stream.batch(0))
    (loss_sum / count).backward()
    optimizer.step()
    t["first_step"] = time.time()
    if rank == 0:
        Path(config["out"]).write_text(json.dumps(t))


def breakdown(model: str, method: str, workers: int, data, cpus: float, storage: str, batch: int) -> dict:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    out = tempfile.mktemp(prefix="lfl-start-", suffix=".json")
    trainer = TorchTrainer(
        setup_phases,
        train_loop_config={"model": MODELS[model], "method": method, "data": data, "micro": batch // workers,
                           "cpus_per_worker": cpus / workers, "out": out},
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


def real_trial(model: str, method: str, workers: int, data, cpus: float, storage: str, batch: int) -> dict:
    from lfl_ray.methods import Full, Lora
    from lfl_ray.train.config import TrialConfig

    cfg = TrialConfig(model=MODELS[model], method=Lora(rank=16, targets="all") if method == "lora" else Full(),
                      micro_batch_size=batch // workers, global_batch_size=batch, total_steps=2, report_every=1,
                      num_workers=workers, cpus_per_worker=cpus / workers, save_checkpoints=False)
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
    rows = []
    for model in args.models:
        if args.data == "dataspec":
            from lfl_ray.data import DataSpec, load_regime

            data = DataSpec(regime="code_ift", source="offline", model=MODELS[model], seq_len=256,
                            max_train_blocks=160, heldout_blocks=12).validate()
            load_regime(data, log=lambda *_: None)  # build the cache once, as a sweep's driver does
        else:
            data = synthetic_blocks(64, 256)
        for workers in args.workers:
            parts, trials = [], []
            for rep in range(args.reps):
                print(f"[start] {model} {workers} worker(s) rep {rep + 1} ...", flush=True)
                trials.append(real_trial(model, args.method, workers, data, args.cpus, storage, args.batch))
                parts.append(breakdown(model, args.method, workers, data, args.cpus, storage, args.batch))
            row = {"model": model, "workers": workers, "method": args.method}
            for key in trials[0]:
                row[f"trial_{key}"] = median([t[key] for t in trials])
            for key in parts[0]:
                row[key] = median([p[key] for p in parts])
            rows.append(row)
    print(f"\nTrial start (cached model, data={args.data}, {args.method}, {args.cpus:g} CPUs); ray.init took "
          f"{ray_init_s:.1f} s (once per sweep). Medians of {args.reps} rep(s), seconds.")
    print(table(rows, [("model", "model", ""), ("workers", "workers", ""),
                       ("trial_to_first_step", "trial: fit->1st step", ".1f"), ("trial_ready", "trial: fit->ready", ".1f"),
                       ("trial_fit_s", "trial fit (2 steps)", ".1f")]))
    print("\nBreakdown (same phases as the loop, timed on rank 0), seconds:")
    print(table(rows, [("model", "model", ""), ("workers", "workers", "")] +
                [(p, p, ".2f") for p in PHASES] + [("to_first_step", "total", ".1f"), ("teardown", "teardown", ".1f")]))
    print("\nWorker group split: fit() -> worker process created, and process created -> loop's first line:")
    print(table(rows, [("model", "model", ""), ("workers", "workers", ""),
                       ("to_worker_process", "fit->worker process", ".2f"),
                       ("worker_process_to_loop", "process->loop", ".2f")]))
    save_results("trial_start", rows, vars(args), {"ray_init_s": ray_init_s})
    return rows


if __name__ == "__main__":
    main()
