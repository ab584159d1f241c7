"""The benchmark scripts: each answers --help, the table printer aligns, a tiny run prints a table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = ["memory.py", "train_throughput.py", "trial_start.py", "threads.py", "flops.py",
           "eval_throughput.py", "sweep_efficiency.py", "gpu.py", "run_all.py",
           "optimizer_step.py"]
sys.path.insert(0, str(BENCH))


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_answers_help(script):
    out = subprocess.run([sys.executable, str(BENCH / script), "--help"], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage:") and "--" in out.stdout


def test_table_aligns_columns_and_marks_missing_values():
    from harness import table

    text = table([{"a": "full", "b": 1234.5}, {"a": "lora", "b": None}], [("a", "method", ""), ("b", "tok/s", ".0f")])
    lines = text.splitlines()
    assert lines[0].split() == ["method", "tok/s"] and set(lines[1]) <= {"-", " "}
    assert lines[2].split() == ["full", "1234"] and lines[3].split() == ["lora", "-"]
    assert len({len(line) for line in lines}) == 1


def test_gpu_script_exits_cleanly_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible: gpu.py would run the real benchmark")
    out = subprocess.run([sys.executable, str(BENCH / "gpu.py")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "no CUDA device" in out.stdout


@pytest.mark.slow
def test_tiny_memory_run_prints_a_table_with_lora_below_full(tmp_path):
    out = subprocess.run([sys.executable, str(BENCH / "memory.py"), "--model", "tiny", "--steps", "2",
                          "--threads", "1", "--configs", "full/hf-loss", "lora/chunked"],
                         capture_output=True, text=True, timeout=600,
                         env={**os.environ, "LFL_BENCH_RESULTS": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert (tmp_path / "memory_tiny.json").exists()
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines() if line.startswith(("full/", "lora/"))}
    assert set(rows) == {"full/hf-loss", "lora/chunked"}
    peak = {name: float(cols[5]) for name, cols in rows.items()}  # peak RSS MB column
    assert peak["lora/chunked"] < peak["full/hf-loss"]


def test_optimizer_step_times_both_kernels(tmp_path):
    out = subprocess.run([sys.executable, str(BENCH / "optimizer_step.py"), "--params-m", "2", "--steps", "2"],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "LFL_BENCH_RESULTS": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    rows = {line.split()[0]: line.split() for line in out.stdout.splitlines() if line.startswith(("foreach", "fused"))}
    assert set(rows) == {"foreach", "fused"} and all(float(cols[1]) > 0 for cols in rows.values())
    assert (tmp_path / "optimizer_step.json").exists()


@pytest.mark.slow
def test_trial_start_times_a_tune_trial_and_lists_rays_processes(tmp_path):
    out = subprocess.run([sys.executable, str(BENCH / "trial_start.py"), "--models", "tiny", "--workers", "1",
                          "--data", "blocks"], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "LFL_BENCH_RESULTS": str(tmp_path)})
    assert out.returncode == 0, out.stderr[-2000:]
    import json

    result = json.loads((tmp_path / "trial_start.json").read_text())
    row = result["rows"][0]
    # A Tune trial's start comes before its Train fit(): the Tune figures are the longer ones.
    assert row["tune_from_trial_launch"] >= row["tune_from_running"] > 0
    processes = [p["process"] for p in result["timelines"]["tiny, 1 worker(s)"]]
    assert processes[0] == "TrainController" and "RayTrainWorker" in processes
    assert "PreemptionWatcher" not in processes  # off on a local cluster
