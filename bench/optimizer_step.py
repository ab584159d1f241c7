"""Optimizer step time: torch AdamW's default (foreach) kernel vs the fused one lfl-ray's DDP
path uses, on a SmolLM2-sized parameter set (each full-FT DDP worker steps every parameter).

    .venv/bin/python bench/optimizer_step.py [--params-m 133] [--threads 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import median, save_results, table  # noqa: E402


def step_seconds(params, fused: bool, steps: int) -> float:
    import torch

    opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.1, fused=fused or None)
    opt.step()  # allocates the moments
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - start)
    return median(times)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params-m", type=float, default=133.0,
                        help="millions of fp32 parameters, as tensors of 576 x 1536 (SmolLM2's MLP shape)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a cpu-preset DDP worker has 1)")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per kernel (median)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    n = max(1, round(args.params_m * 1e6 / (576 * 1536)))
    params = [torch.nn.Parameter(torch.randn(576, 1536)) for _ in range(n)]
    for p in params:
        p.grad = torch.randn_like(p)
    rows = [{"kernel": kernel, "step_s": step_seconds(params, kernel == "fused", args.steps)}
            for kernel in ("foreach", "fused")]
    for row in rows:
        row["x_foreach"] = rows[0]["step_s"] / row["step_s"]
    print(f"AdamW step, {n * 576 * 1536 / 1e6:.0f}M fp32 parameters, {args.threads} thread(s), "
          f"median of {args.steps}:")
    print(table(rows, [("kernel", "kernel", ""), ("step_s", "step s", ".3f"), ("x_foreach", "speed-up", ".1f")]))
    save_results("optimizer_step", rows, vars(args))
    return rows


if __name__ == "__main__":
    main()
