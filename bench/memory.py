"""Peak resident memory of full FT vs LoRA at the same batch, and where the memory goes.

Each configuration trains a few steps in a fresh Python process, set up by the training
loop's own set-up (``lfl_ray.train.setup.build_training``), and reports its peak
RSS (``getrusage(RUSAGE_SELF).ru_maxrss``) plus a breakdown: RSS after imports, after the
model is built, the bytes autograd saves for backward in one forward (activations, measured
with saved-tensor hooks, parameters excluded), and step time.

    .venv/bin/python bench/memory.py --model smollm2 --steps 3
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import MODELS, bench_method, run_child, save_results, synthetic_blocks, table  # noqa: E402

# name -> (method, loss, chunk, lora dropout, activation checkpointing)
CONFIGS = {
    "full/hf-loss": ("full", "hf", 0, 0.0, False),
    "full/chunked": ("full", "chunked", 256, 0.0, False),
    "lora/hf-loss": ("lora", "hf", 0, 0.0, False),
    "lora/hf-loss/dropout0.05": ("lora", "hf", 0, 0.05, False),
    "lora/chunked": ("lora", "chunked", 256, 0.0, False),
    "lora/chunked/ckpt": ("lora", "chunked", 256, 0.0, True),
    "full/chunked/ckpt": ("full", "chunked", 256, 0.0, True),
}
DEFAULT_CONFIGS = ("full/hf-loss", "full/chunked", "lora/hf-loss", "lora/chunked", "lora/chunked/ckpt")


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def child(args) -> dict:
    """One configuration in this (fresh) process."""
    t0 = time.perf_counter()
    import torch

    from lfl_ray.train.config import Budget, Resources, TrialConfig
    from lfl_ray.train.setup import build_training

    method_name, loss_kind, chunk, dropout, ckpt = CONFIGS[args.config]
    if args.heap_fix:
        from lfl_ray.allocator import limit_heap_retention

        limit_heap_retention()
    trim = None
    if args.trim:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        trim = lambda: libc.malloc_trim(0)  # noqa: E731
    rss_import = _rss_mb()
    blocks = synthetic_blocks(args.batch * (args.steps + 1), args.seq_len)
    # The trial's own set-up; a constant LR, as the measurement only needs the optimizer's state.
    cfg = TrialConfig(model=MODELS[args.model], method=bench_method(method_name, dropout=dropout), lr=1e-4,
                      budget=Budget(steps=args.steps, milestones=(), seq_len=args.seq_len, schedule="constant",
                                    warmup_steps=0, micro_batch_size=args.batch, global_batch_size=args.batch),
                      resources=Resources(num_workers=1, cpus_per_worker=float(args.threads)),
                      activation_checkpointing=ckpt, loss_chunk_size=chunk, save_checkpoints=False).validate()
    marks: dict[str, float] = {}
    run = build_training(cfg, blocks, mark=lambda phase: marks.setdefault(phase, _rss_mb()))
    model, desc = run.model, run.description
    model.train()
    rss_model = marks["method"]
    loss_module = run.loss_module if loss_kind == "chunked" else None
    param_ptrs = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in param_ptrs:
            saved[storage.data_ptr()] = storage.nbytes()
        return t

    step_times, rss_after = [], []
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu_marks = [(usage.ru_utime, usage.ru_stime)]
    for step in range(args.steps):
        rows = slice(step * args.batch, (step + 1) * args.batch)
        ids, labels, mask = blocks.input_ids[rows], blocks.labels[rows], blocks.attention_mask[rows]
        start = time.perf_counter()
        hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t) if step == 0 else None
        if hooks:
            hooks.__enter__()
        if loss_module is None:
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        else:
            total, count = loss_module(ids, mask, labels)
            loss = total / count
        if hooks:
            hooks.__exit__(None, None, None)
        if args.trim:
            trim()  # forward's temporaries are free; the saved activations are not
        loss.backward()
        run.optimizer_step()  # clip to 1.0, step, zero the gradients
        if args.trim:
            trim()
        step_times.append(time.perf_counter() - start)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        cpu_marks.append((usage.ru_utime, usage.ru_stime))
        rss_after.append(_rss_mb())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"config": args.config, "model": args.model, "trainable_params": desc.trainable_params,
            "rss_import_mb": rss_import, "rss_model_mb": rss_model,
            "saved_for_backward_mb": sum(saved.values()) / 2**20,
            "rss_end_mb": rss_after[-1], "peak_rss_mb": peak,
            "step_s": sorted(step_times)[len(step_times) // 2] if len(step_times) > 2 else step_times[-1],
            "step_times": step_times, "child_s": time.perf_counter() - t0,
            # CPU seconds per step after the first (user, system): steadier than wall time on a shared machine.
            "cpu_user_s": (cpu_marks[-1][0] - cpu_marks[1][0]) / max(1, len(cpu_marks) - 2),
            "cpu_sys_s": (cpu_marks[-1][1] - cpu_marks[1][1]) / max(1, len(cpu_marks) - 2),
            "heap_fix": bool(args.heap_fix), "trim": bool(args.trim)}


def _allocator_env(choice: str) -> dict[str, str]:
    from lfl_ray import allocator

    if choice == "glibc":
        return {}
    if choice == "trial":
        return allocator.worker_env(log=lambda message: print(message, flush=True))
    path = allocator.find_jemalloc()
    if path is None:
        raise SystemExit("--allocator jemalloc: libjemalloc.so.2 not found; run `lfl-ray assets fetch`")
    return allocator.preload_env(path)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(MODELS), default="smollm2")
    parser.add_argument("--configs", nargs="+", choices=sorted(CONFIGS), default=list(DEFAULT_CONFIGS),
                        help="configurations to measure (each in a fresh process)")
    parser.add_argument("--batch", type=int, default=4, help="rows per step")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per configuration (>= 2: "
                        "AdamW allocates its state at the first step)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--malloc-mmap-threshold", type=int, default=None, metavar="BYTES",
                        help="run the children with glibc's MALLOC_MMAP_THRESHOLD_=BYTES (fixed threshold: "
                        "large freed blocks go back to the OS instead of staying in the heap)")
    parser.add_argument("--heap-fix", action="store_true",
                        help="call lfl_ray.allocator.limit_heap_retention() first, as CPU training workers do "
                        "when LFL_RAY_MMAP_THRESHOLD is set")
    parser.add_argument("--trim", action="store_true",
                        help="call glibc's malloc_trim(0) after each forward and each optimizer step "
                        "(returns freed heap pages to the OS at two points per step)")
    parser.add_argument("--allocator", choices=("trial", "glibc", "jemalloc"), default="trial",
                        help="malloc of the children: what a CPU trial's Ray workers get "
                        "(lfl_ray.allocator: jemalloc where found; the default), or force one")
    parser.add_argument("--child", dest="config", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.config:
        print(json.dumps(child(args)))
        return []
    env = {} if args.malloc_mmap_threshold is None else {"MALLOC_MMAP_THRESHOLD_": str(args.malloc_mmap_threshold)}
    env.update(_allocator_env(args.allocator))
    rows = []
    for name in args.configs:
        print(f"[memory] {args.model} {name} ...", flush=True)
        rows.append(run_child(Path(__file__), ["--child", name, "--model", args.model, "--batch", str(args.batch),
                                               "--seq-len", str(args.seq_len), "--steps", str(args.steps),
                                               "--threads", str(args.threads)] + (["--heap-fix"] if args.heap_fix else [])
                                              + (["--trim"] if args.trim else []), env=env))
        rows[-1]["malloc_mmap_threshold"] = args.malloc_mmap_threshold
        rows[-1]["allocator"] = "jemalloc" if "LD_PRELOAD" in env else "glibc"
    full = next((r["peak_rss_mb"] for r in rows if r["config"] == "full/hf-loss"), None)
    for r in rows:
        r["vs_full_hf"] = r["peak_rss_mb"] / full if full else None
    print(f"\nPeak RSS, {args.model}, batch {args.batch} x {args.seq_len}, fp32, AdamW, {args.steps} steps "
          "(each row a fresh process)")
    print(table(rows, [("config", "config", ""), ("trainable_params", "trainable", ","),
                       ("rss_import_mb", "after import MB", ".0f"), ("rss_model_mb", "model built MB", ".0f"),
                       ("saved_for_backward_mb", "saved for bwd MB", ".0f"), ("peak_rss_mb", "peak RSS MB", ".0f"),
                       ("vs_full_hf", "x full/hf", ".2f"), ("allocator", "malloc", ""), ("step_s", "step s", ".2f"),
                       ("cpu_user_s", "CPU user s/step", ".2f"), ("cpu_sys_s", "CPU sys s/step", ".2f")]))
    suffix = ("" if args.malloc_mmap_threshold is None else f"_mmap{args.malloc_mmap_threshold}") + \
        ("_heapfix" if args.heap_fix else "") + ("_trim" if args.trim else "") + \
        ("_glibc" if args.allocator == "glibc" else "")
    save_results(f"memory_{args.model}{suffix}", rows, vars(args))
    return rows


if __name__ == "__main__":
    main()
