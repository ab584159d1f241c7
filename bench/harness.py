"""What every benchmark shares: synthetic token blocks, fresh-process runs, tables, result files.

Each benchmark script runs its configurations, prints a plain-text table and writes its
rows to ``bench/results/<name>.json`` (so RESULTS.md and ``flops.py`` can read the latest
figures). Configurations whose memory or start-up matters run in a fresh subprocess.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = Path(os.environ.get("LFL_BENCH_RESULTS") or BENCH_DIR / "results")
"""Where result files go (tests point LFL_BENCH_RESULTS elsewhere)."""
REPO = BENCH_DIR.parent
MODELS = {"tiny": "tiny-llama", "smollm2": "smollm2-135m-instruct"}
"""Short names on the command line -> lfl-ray model specs."""


def synthetic_blocks(rows: int, seq_len: int, seed: int = 0, vocab: int = 49152):
    """Random-token TokenBlocks (throughput and memory do not depend on the text)."""
    import torch

    from lfl_ray.data.blocks import TokenBlocks

    gen = torch.Generator().manual_seed(seed)
    return TokenBlocks.from_stream(torch.randint(0, vocab, (rows * seq_len,), generator=gen), seq_len)


def bench_method(name: str, **lora_options):
    """The benchmarks' two methods: ``full`` finetuning, or ``lora`` r=16 on all linear layers."""
    from lfl_ray.methods import Full, Lora

    return Full() if name == "full" else Lora(rank=16, targets="all", **lora_options)


def median(values) -> float:
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def run_child(script: Path, args: list[str], timeout: float = 1800, env: dict | None = None) -> dict:
    """Run ``script --child ...`` in a fresh Python; its last stdout line is a JSON dict."""
    cmd = [sys.executable, str(script), *args]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO,
                          env=dict(os.environ, TOKENIZERS_PARALLELISM="false", **(env or {})))
    wall = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(cmd)} failed (rc {proc.returncode}):\n{proc.stderr[-3000:]}")
    out = json.loads(lines[-1])
    out["process_wall_s"] = wall
    return out


def table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """Rows as aligned text; columns are (key, header, format spec)."""
    cells = [[header for _, header, _ in columns]]
    for row in rows:
        line = []
        for key, _, spec in columns:
            value = row.get(key)
            if value is None or (isinstance(value, float) and value != value):
                line.append("-")
            else:
                line.append(format(value, spec) if spec else str(value))
        cells.append(line)
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    out = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
           for r in cells]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


def machine() -> dict:
    """Where the figures were taken."""
    import torch

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {"date": time.strftime("%Y-%m-%d %H:%M"), "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
            "load_avg_1m_at_start": round(load[0], 2)}


def save_results(name: str, rows: list[dict], args: dict, extra: dict | None = None) -> Path:
    """Write the rows (plus machine, args) to bench/results/<name>.json."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"bench": name, "machine": machine(), "args": args, "rows": rows, **(extra or {})}
    path.write_text(json.dumps(payload, indent=1, default=str))
    return path


def load_results(name: str) -> dict | None:
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def start_ray(num_cpus: int) -> None:
    """A fresh local Ray of the benchmark's own, with lfl-ray's trial settings (``init_ray``:
    never another process's cluster, its own temp root, the dashboard on 127.0.0.1)."""
    from lfl_ray.ray_runtime import init_ray

    init_ray(num_cpus=num_cpus)
