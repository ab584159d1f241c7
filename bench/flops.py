"""FLOP efficiency: this machine's fp32 matmul peak with torch, and each training mode's share of it.

The peak is the best of several timed square matmuls per thread count. Achieved FLOP/s come
from the latest ``train_throughput`` results (bench/results/train_throughput_<model>.json):
6N FLOPs per token for full FT, 4N for LoRA (forward 2N + input gradients 2N; the frozen
weights get no weight gradient; the adapters add under 1%), N = the base model's parameters.
Run train_throughput.py first (run_all.py does).

    .venv/bin/python bench/flops.py --threads 1 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import MODELS, load_results, save_results, table  # noqa: E402


def matmul_peak(threads: int, size: int = 2048, repeats: int = 5) -> float:
    """Best fp32 GFLOP/s of ``size``^2 matmuls over ``repeats`` timed runs."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(3):
            a @ b
        best = max(best, 3 * 2 * size**3 / (time.perf_counter() - start) / 1e9)
    return best


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--size", type=int, default=2048)
    args = parser.parse_args(argv)
    peaks = {t: matmul_peak(t, args.size) for t in args.threads}
    print(f"fp32 matmul peak ({args.size}^2, best of 5): " +
          ", ".join(f"{t} thread(s) {g:.1f} GFLOP/s" for t, g in peaks.items()))
    rows = []
    for model in MODELS:
        results = load_results(f"train_throughput_{model}")
        if not results or not results.get("n_params"):
            continue
        threads = results["args"]["threads"]
        peak = peaks.get(threads) or matmul_peak(threads, args.size)
        for row in results["rows"]:
            rows.append({"model": model, "method": row["method"], "runner": row["runner"],
                         "tokens_per_s": row["tokens_per_s"], "gflops": row.get("gflops"),
                         "peak_gflops": peak, "fraction": (row.get("gflops") or 0) / peak,
                         "measured": results["machine"]["date"]})
    if rows:
        print("\nAchieved model FLOP/s (6N full, 4N LoRA per token) as a fraction of the matmul peak "
              "at the same thread count")
        print(table(rows, [("model", "model", ""), ("method", "method", ""), ("runner", "runner", ""),
                           ("tokens_per_s", "tok/s", ".0f"), ("gflops", "GFLOP/s", ".1f"),
                           ("peak_gflops", "peak", ".1f"), ("fraction", "of peak", ".0%")]))
    else:
        print("no train_throughput results yet: run bench/train_throughput.py first")
    save_results("flops", rows, vars(args), {"peaks": peaks})
    return rows


if __name__ == "__main__":
    main()
