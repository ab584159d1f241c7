"""Threads inside Ray Train workers: what Ray sets, what lfl-ray's loop sets, and whether it is used.

For each (workers, CPUs per worker) a Ray Train function reports, per worker: OMP_NUM_THREADS
as Ray set it, ``torch.get_num_threads()`` on entry, the count after lfl-ray's rule
(``lfl_ray.train.setup.worker_threads``, the call the training set-up makes), and the fp32 matmul
GFLOP/s it reaches with that count vs with 1 thread (more threads only help if the worker
really got the cores).

    .venv/bin/python bench/threads.py
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import save_results, table  # noqa: E402

SETTINGS = ((1, 1.0), (1, 2.0), (2, 1.0), (2, 0.99))


def matmul_gflops(threads: int, size: int = 1024, seconds: float = 1.5) -> float:
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    torch.set_num_threads(old)
    return 2 * size**3 * n / (time.perf_counter() - start) / 1e9


def worker_threads(config: dict) -> None:
    import os

    import torch

    import ray.train
    from lfl_ray.train.config import Budget, Resources, TrialConfig
    from lfl_ray.train.setup import worker_threads as training_threads

    rank = ray.train.get_context().get_world_rank()
    entry = torch.get_num_threads()
    cfg = TrialConfig(budget=Budget(milestones=(), micro_batch_size=1, global_batch_size=config["workers"]),
                      resources=Resources(num_workers=config["workers"], cpus_per_worker=config["cpus"]))
    torch.set_num_threads(training_threads(cfg))
    record = {"rank": rank, "omp": os.environ.get("OMP_NUM_THREADS"), "entry": entry,
              "after_loop_rule": torch.get_num_threads(),
              "gflops_set": matmul_gflops(torch.get_num_threads()), "gflops_1": matmul_gflops(1)}
    Path(config["out"] + f".{rank}").write_text(json.dumps(record))


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    args = parser.parse_args(argv)

    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from harness import start_ray

    start_ray(args.cpus)
    storage = tempfile.mkdtemp(prefix="lfl-bench-threads-")
    rows = []
    for workers, cpus in SETTINGS:
        if workers * cpus > args.cpus:
            continue
        print(f"[threads] {workers} worker(s) x {cpus:g} CPU ...", flush=True)
        out = tempfile.mktemp(prefix="lfl-threads-")
        TorchTrainer(worker_threads, train_loop_config={"workers": workers, "cpus": cpus, "out": out},
                     torch_config=TorchConfig(backend="gloo"),
                     scaling_config=ScalingConfig(num_workers=workers, resources_per_worker={"CPU": cpus}),
                     run_config=RunConfig(name=f"threads-{time.time_ns()}", storage_path=storage)).fit()
        for rank in range(workers):
            record = json.loads(Path(f"{out}.{rank}").read_text())
            rows.append({"workers": workers, "cpus_per_worker": cpus, **record})
    print(f"\nTorch threads in Ray Train workers ({args.cpus}-CPU local Ray); GFLOP/s: 1024^2 fp32 matmul "
          "in the worker (workers run at once)")
    print(table(rows, [("workers", "workers", ""), ("cpus_per_worker", "CPU/worker", "g"), ("rank", "rank", ""),
                       ("omp", "OMP_NUM_THREADS (Ray)", ""), ("entry", "torch threads at entry", ""),
                       ("after_loop_rule", "after loop.py", ""), ("gflops_set", "GFLOP/s (loop threads)", ".1f"),
                       ("gflops_1", "GFLOP/s (1 thread)", ".1f")]))
    save_results("threads", rows, vars(args))
    return rows


if __name__ == "__main__":
    main()
