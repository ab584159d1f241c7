"""Training throughput: a bare PyTorch loop vs an lfl-ray trial on Ray Train (1 worker, DDP x 2).

Same model, batch, sequence length, optimizer (AdamW) and step count for every runner:
- ``bare``: the loop a user would write: HF model + peft, ``model(..., labels=...).loss``,
  AdamW, grad clipping, ``torch.set_num_threads(threads)``;
- ``bare+lfl-loss``: the same loop with lfl-ray's LossModule (chunked LM-head loss), which
  separates the cost of the loss from the cost of the platform;
- ``trial``: ``lfl_ray.train.trial.build_trainer(...).fit()`` with 1 worker holding all threads;
- ``ddp2``: the same trial with 2 DDP workers (gloo), each half the batch and the threads.

Steady-state tokens/s skips the first step (bare) or the first report window (trials) and,
for trials, counts the time of the reports themselves (timestamps of the rank-0 logger
calls, see probe.py). Fixed overhead = fit() wall time minus steps at the steady rate.

    .venv/bin/python bench/train_throughput.py --model tiny --steps 12
    .venv/bin/python bench/train_throughput.py --model smollm2 --steps 8 --report-every 2
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import MODELS, bench_method, median, save_results, synthetic_blocks, table  # noqa: E402
from probe import fit_with_probe, ship_by_value  # noqa: E402

RUNNERS = ("bare", "bare+lfl-loss", "trial", "ddp2")
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def flops_per_token(n_params: float, method: str) -> float:
    """Model FLOPs per trained token: 6N for full FT; LoRA skips frozen weight gradients (4N)."""
    return (6.0 if method == "full" else 4.0) * n_params


def bare_loop(model_name: str, method: str, loss: str, blocks, steps: int, batch: int, threads: int) -> dict:
    """Plain PyTorch training; returns steady tokens/s (steps 2..N) and per-step times."""
    import torch
    from peft import LoraConfig, get_peft_model

    from lfl_ray.models import load_model
    from lfl_ray.train.loss import LossModule

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = load_model(MODELS[model_name], dtype=torch.float32)
    n_params = sum(p.numel() for p in model.parameters())
    if method == "lora":
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0,
                                                 target_modules=list(LORA_TARGETS), task_type="CAUSAL_LM"))
    model.config.use_cache = False
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    loss_module = LossModule(model) if loss == "lfl" else None
    times = []
    for step in range(steps):
        rows = slice((step * batch) % (len(blocks) - batch), (step * batch) % (len(blocks) - batch) + batch)
        ids, labels, mask = blocks.input_ids[rows], blocks.labels[rows], blocks.attention_mask[rows]
        start = time.perf_counter()
        if loss_module is None:
            value = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        else:
            total, count = loss_module(ids, mask, labels)
            value = total / count
        value.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    tokens_per_step = batch * blocks.seq_len
    steady = times[1:] or times
    return {"tokens_per_s": tokens_per_step * len(steady) / sum(steady), "step_s": median(steady),
            "first_step_s": times[0], "threads": torch.get_num_threads(), "n_params": n_params}


def trial_run(model_name: str, method: str, workers: int, blocks, steps: int, batch: int, threads: int,
              report_every: int, storage: str) -> dict:
    """One lfl-ray trial on Ray Train; steady rate and overheads from the probe logger's timestamps."""
    from lfl_ray.train.config import Budget, Resources, TrialConfig

    cfg = TrialConfig(model=MODELS[model_name], method=bench_method(method), report_every=report_every,
                      budget=Budget(steps=steps, milestones=(), micro_batch_size=batch // workers,
                                    global_batch_size=batch, warmup_steps=0, schedule="constant"),
                      resources=Resources(num_workers=workers, cpus_per_worker=threads / workers),
                      save_checkpoints=False)
    name = f"bench-{model_name}-{method}-{workers}w-{time.time_ns()}"
    start, end, records = fit_with_probe(cfg, blocks, name=name, storage=storage)
    ready = next(r for r in records if "trainable_params" in r["metrics"])
    reports = [r for r in records if "tokens_per_s" in r["metrics"]]
    tokens_per_step = batch * blocks.seq_len
    first, last = reports[0], reports[-1]
    steady_tokens = (len(reports) - 1) * report_every * tokens_per_step
    rate = steady_tokens / (last["t"] - first["t"]) if len(reports) > 1 else first["metrics"]["tokens_per_s"]
    return {"tokens_per_s": rate, "step_s": tokens_per_step / rate,
            "loop_tokens_per_s": median([r["metrics"]["tokens_per_s"] for r in reports[1:]] or
                                        [first["metrics"]["tokens_per_s"]]),
            "setup_s": ready["t"] - start, "fit_s": end - start,
            "fixed_overhead_s": (end - start) - steps * tokens_per_step / rate,
            "threads": last["torch_threads"], "omp": last["omp_num_threads"],
            "worker_peak_rss_mb": last["peak_rss_mb"]}


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default="tiny")
    parser.add_argument("--methods", nargs="+", choices=("full", "lora"), default=["full", "lora"])
    parser.add_argument("--runners", nargs="+", choices=RUNNERS, default=list(RUNNERS))
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per run")
    parser.add_argument("--batch", type=int, default=4, help="rows per optimizer step (global)")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (bare) / CPUs per trial")
    parser.add_argument("--report-every", type=int, default=3, help="trial report interval in steps")
    parser.add_argument("--reps", type=int, default=1, help="repetitions; the table shows medians")
    args = parser.parse_args(argv)

    from harness import start_ray

    ship_by_value()
    start_ray(args.threads)
    storage = tempfile.mkdtemp(prefix="lfl-bench-train-")
    blocks = synthetic_blocks(args.batch * args.steps + args.batch, args.seq_len)
    runs: dict[tuple, list[dict]] = {}
    for rep in range(args.reps):
        for method in args.methods:
            for runner in args.runners:  # interleaved, so slow phases of a noisy machine hit all runners
                print(f"[train] rep {rep + 1}/{args.reps} {args.model} {method} {runner} ...", flush=True)
                if runner.startswith("bare"):
                    out = bare_loop(args.model, method, "lfl" if runner == "bare+lfl-loss" else "hf", blocks,
                                    args.steps, args.batch, args.threads)
                else:
                    out = trial_run(args.model, method, 2 if runner == "ddp2" else 1, blocks, args.steps,
                                    args.batch, args.threads, args.report_every, storage)
                runs.setdefault((method, runner), []).append(out)
    n_params = next(o["n_params"] for outs in runs.values() for o in outs if "n_params" in o) \
        if any(r.startswith("bare") for r in args.runners) else None
    rows = []
    for (method, runner), outs in runs.items():
        row = {"model": args.model, "method": method, "runner": runner, "reps": len(outs)}
        for key in ("tokens_per_s", "step_s", "loop_tokens_per_s", "setup_s", "fit_s", "fixed_overhead_s",
                    "worker_peak_rss_mb", "threads"):
            values = [o[key] for o in outs if key in o]
            row[key] = median(values) if values else None
        row["omp"] = outs[-1].get("omp")
        if n_params:
            row["gflops"] = row["tokens_per_s"] * flops_per_token(n_params, method) / 1e9
        rows.append(row)
    for row in rows:
        bare = next((r for r in rows if r["method"] == row["method"] and r["runner"] == "bare"), None)
        lfl = next((r for r in rows if r["method"] == row["method"] and r["runner"] == "bare+lfl-loss"), None)
        row["x_bare"] = row["tokens_per_s"] / bare["tokens_per_s"] if bare else None
        row["x_bare_lfl"] = row["tokens_per_s"] / lfl["tokens_per_s"] if lfl else None
    print(f"\nTraining throughput, {args.model}, batch {args.batch} x {args.seq_len}, {args.threads} threads, "
          f"{args.steps} steps, medians of {args.reps} rep(s)")
    print(table(rows, [("method", "method", ""), ("runner", "runner", ""), ("tokens_per_s", "tok/s", ".0f"),
                       ("x_bare", "x bare", ".3f"), ("x_bare_lfl", "x bare+lfl-loss", ".3f"),
                       ("step_s", "step s", ".2f"), ("gflops", "GFLOP/s", ".1f"),
                       ("setup_s", "start->loop s", ".1f"), ("fixed_overhead_s", "fixed overhead s", ".1f"),
                       ("threads", "torch threads", ""), ("worker_peak_rss_mb", "worker RSS MB", ".0f")]))
    save_results(f"train_throughput_{args.model}", rows, vars(args), {"n_params": n_params})
    return rows


if __name__ == "__main__":
    main()
