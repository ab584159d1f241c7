"""Sweep efficiency: where a sweep's wall time goes, and what ASHA saves against the full grid.

Runs a preset (``smoke`` by default: tiny model, 3 trials of 8 steps, milestones 4 and 8)
twice on a fresh local Ray and sqlite MLflow store: with ASHA (as shipped) and with the
scheduler off (every trial runs to the end). From MLflow it sums, per trial, the training
compute (each report window's tokens / its tokens_per_s) and the milestone evaluations
(``eval_seconds``); the base-model eval time comes from the driver's log; the rest of the
wall time is Ray/Tune/Train/MLflow overhead (start-up, scheduling, worker groups, reporting,
checkpoints, logging). The cpu preset takes ~49 min on 2 cores: rather than running it
again, analyse the demo's sweep with ``--experiment``.

    .venv/bin/python bench/sweep_efficiency.py --preset smoke
    .venv/bin/python bench/sweep_efficiency.py --experiment demo-code-cpt   # after `make demo`
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import save_results, table  # noqa: E402


def _trial_times(outcome) -> tuple[list[dict], float, float]:
    """Per-trial compute/eval seconds and final `learning` from the sweep's MLflow runs."""
    from mlflow import MlflowClient

    from lfl_ray.mlflow_schema import learning_history, step_tokens

    client = MlflowClient(outcome.tracking_uri)
    trials, train_s, eval_s = [], 0.0, 0.0
    for run in client.search_runs([outcome.experiment_id], max_results=1000):
        if run.data.tags.get("lfl.role") != "trial":
            continue
        rates = sorted(client.get_metric_history(run.info.run_id, "tokens_per_s"), key=lambda m: m.step)
        tokens_at = step_tokens(client, run.info.run_id)  # steps are optimizer steps
        compute, prev = 0.0, 0
        for m in rates:
            compute += (tokens_at(m.step) - prev) / m.value
            prev = tokens_at(m.step)
        evals = sum(m.value for m in client.get_metric_history(run.info.run_id, "eval_seconds"))
        learning = learning_history(client, run.info.run_id)
        trials.append({"trial": run.data.tags.get("lfl.trial_key"), "status": run.data.tags.get("lfl.status"),
                       "tokens": prev, "train_s": compute, "eval_s": evals,
                       "learning": max(learning, key=lambda m: m.step).value if learning else None})
        train_s += compute
        eval_s += evals
    return trials, train_s, eval_s


def run_once(preset: str, scheduler: str, root: Path) -> dict:
    from lfl_ray.sweep.study import load_study
    from lfl_ray.sweep.runner import run_sweep

    spec = load_study("code_ift", preset=preset, name=f"bench-{preset}-{scheduler}").spec()
    spec = replace(spec, scheduler=scheduler)
    lines: list[str] = []

    def log(*parts):
        text = " ".join(str(p) for p in parts)
        lines.append(text)
        print(text, flush=True)

    start = time.perf_counter()
    outcome = run_sweep(spec, tracking_uri=f"sqlite:///{root}/mlflow-{scheduler}.db",
                        storage_path=str(root / f"ray-{scheduler}"), log=log)
    wall = time.perf_counter() - start
    base = next((float(m.group(1)) for line in lines
                 if (m := re.search(r"base model evaluated in (\d+(?:\.\d+)?) s", line))), 0.0)
    trials, train_s, eval_s = _trial_times(outcome)
    best = max((t["learning"] for t in trials if t["learning"] is not None), default=None)
    return {"scheduler": scheduler, "wall_s": wall, "train_s": train_s, "eval_s": eval_s, "base_eval_s": base,
            "overhead_s": wall - train_s - eval_s - base, "train_fraction": train_s / wall,
            "tokens": sum(t["tokens"] for t in trials), "best_learning": best, "trials": trials,
            "statuses": outcome.statuses}


def from_experiment(name: str, tracking_uri: str) -> dict:
    """The same split for a sweep that already ran (e.g. ``make demo``), from its MLflow runs:
    wall time = the parent run's start to end."""
    from types import SimpleNamespace

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        raise SystemExit(f"--experiment: no MLflow experiment {name!r} in {tracking_uri}")
    parents = [r for r in client.search_runs([experiment.experiment_id], max_results=1000)
               if r.data.tags.get("lfl.role") == "sweep" and r.info.end_time]
    if not parents:
        raise SystemExit(f"--experiment: {name!r} has no finished sweep run")
    parent = parents[0]
    wall = (parent.info.end_time - parent.info.start_time) / 1000
    trials, train_s, eval_s = _trial_times(SimpleNamespace(tracking_uri=tracking_uri,
                                                           experiment_id=experiment.experiment_id))
    best = max((t["learning"] for t in trials if t["learning"] is not None), default=None)
    return {"scheduler": parent.data.params.get("scheduler", "?"), "wall_s": wall, "train_s": train_s,
            "eval_s": eval_s, "base_eval_s": 0.0, "overhead_s": wall - train_s - eval_s,
            "train_fraction": train_s / wall, "tokens": sum(t["tokens"] for t in trials),
            "best_learning": best, "trials": trials,
            "statuses": {t["trial"]: t["status"] for t in trials}}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=("smoke", "cpu"), default="smoke")
    parser.add_argument("--schedulers", nargs="+", choices=("asha", "none"), default=["asha", "none"])
    parser.add_argument("--experiment", help="analyse this finished sweep instead of running one "
                        "(e.g. demo-code-cpt after `make demo`); the base eval counts as overhead")
    parser.add_argument("--tracking-uri", default=None, help="with --experiment (default: ./mlruns)")
    args = parser.parse_args(argv)
    if args.experiment:
        from lfl_ray.tracking import default_tracking_uri

        rows = [from_experiment(args.experiment, args.tracking_uri or default_tracking_uri())]
        label = f"experiment {args.experiment}"
    else:
        from harness import start_ray

        start_ray(2)  # a fresh local Ray of the benchmark's own
        root = Path(tempfile.mkdtemp(prefix="lfl-bench-sweep-"))
        rows = [run_once(args.preset, s, root) for s in args.schedulers]
        label = f"preset {args.preset} (code_ift)"
    print(f"\nSweep efficiency, {label}, seconds; overhead = wall - training compute - "
          "milestone evals - base eval (includes ray.init, MLflow, worker groups, reports, checkpoints)")
    print(table(rows, [("scheduler", "scheduler", ""), ("wall_s", "wall", ".0f"), ("train_s", "training compute", ".1f"),
                       ("eval_s", "milestone evals", ".1f"), ("base_eval_s", "base eval", ".1f"),
                       ("overhead_s", "overhead", ".0f"), ("train_fraction", "compute share", ".1%"),
                       ("tokens", "tokens trained", ","), ("best_learning", "best learning", ".4f")]))
    if len(rows) == 2:
        asha, grid = rows
        print(f"\nASHA vs full grid: {asha['tokens'] / grid['tokens']:.0%} of the tokens, "
              f"{asha['wall_s'] / grid['wall_s']:.0%} of the wall time; best learning {asha['best_learning']:.4f} vs "
              f"{grid['best_learning']:.4f}")
    print(table(rows[0]["trials"], [("trial", "trial", ""), ("status", "status", ""), ("tokens", "tokens", ","),
                                    ("train_s", "training s", ".1f"), ("eval_s", "evals s", ".1f"),
                                    ("learning", "learning", ".4f")]))
    save_results(f"sweep_efficiency_{args.experiment or args.preset}", rows, vars(args))
    return rows


if __name__ == "__main__":
    main()
