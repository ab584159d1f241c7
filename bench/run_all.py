"""Run the CPU benchmarks with modest defaults (about 25-40 minutes on 2 quiet cores; `--quick`:
the tiny model only, a few minutes), each in its own process, printing every table.

Results land in bench/results/*.json; bench/RESULTS.md holds the figures of the last full run
with the machine, date and commands. ``bench/gpu.py`` is not part of this (it needs CUDA).

    .venv/bin/python bench/run_all.py            # what `make bench` runs
    .venv/bin/python bench/run_all.py --quick
    .venv/bin/python bench/run_all.py --only memory threads
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent

FULL = [
    ("threads", ["threads.py"]),
    ("memory", ["memory.py", "--model", "smollm2", "--steps", "3"]),
    ("train_tiny", ["train_throughput.py", "--model", "tiny", "--steps", "12", "--reps", "2"]),
    ("train_smollm2", ["train_throughput.py", "--model", "smollm2", "--steps", "7", "--report-every", "2"]),
    ("flops", ["flops.py"]),
    ("optimizer", ["optimizer_step.py"]),
    ("trial_start", ["trial_start.py", "--models", "tiny", "smollm2", "--workers", "1", "2"]),
    ("eval", ["eval_throughput.py", "--model", "smollm2"]),
    ("sweep", ["sweep_efficiency.py", "--preset", "smoke"]),
]
QUICK = [
    ("threads", ["threads.py"]),
    ("memory", ["memory.py", "--model", "tiny", "--steps", "2", "--configs", "full/hf-loss", "lora/chunked"]),
    ("train_tiny", ["train_throughput.py", "--model", "tiny", "--steps", "6", "--runners", "bare", "trial"]),
    ("flops", ["flops.py", "--threads", "2"]),
    ("optimizer", ["optimizer_step.py", "--params-m", "20"]),
    ("trial_start", ["trial_start.py", "--models", "tiny", "--workers", "1", "--data", "blocks"]),
    ("eval", ["eval_throughput.py", "--model", "tiny", "--mc-items", "4", "--gen-prompts", "2", "--new-tokens", "8"]),
]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny model only, a few minutes")
    parser.add_argument("--only", nargs="+", help=f"run only these: {[name for name, _ in FULL]}")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.only:
        unknown = set(args.only) - {name for name, _ in plan}
        if unknown:
            parser.error(f"--only: unknown {sorted(unknown)}; choose from {[name for name, _ in plan]}")
        plan = [(name, cmd) for name, cmd in plan if name in args.only]
    summary, failed = [], []
    for name, cmd in plan:
        print(f"\n=== {name}: {' '.join(['bench/' + cmd[0], *cmd[1:]])}", flush=True)
        start = time.perf_counter()
        rc = subprocess.call([sys.executable, str(BENCH / cmd[0]), *cmd[1:]])
        summary.append((name, rc, time.perf_counter() - start))
        if rc:
            failed.append(name)
    print("\n=== summary")
    for name, rc, seconds in summary:
        print(f"{name:<14} {'ok' if rc == 0 else f'FAILED (rc {rc})':<14} {seconds:7.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
