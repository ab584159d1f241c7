"""cluster/README.md walks from zero to results, and its cost table follows its stated method."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[2] / "cluster" / "README.md").read_text()

# The method the README states, as numbers.
PARAMS = 6.74e9                       # Llama-2-7B
IFT_EPOCH_TOKENS = 193 * 192 * 4096   # batches x sequences x tokens
CPT_TOKENS = 20e9
PEAK, MFU = 989.4e12, 0.40            # H100 SXM dense BF16, assumed utilisation
AWS_PER_GPU_HOUR, GCP_PER_GPU_HOUR = 55.04 / 8, 88.49 / 8


def gpu_hours(tokens: float, full: bool) -> float:
    flops_per_token = (6 if full else 4) * PARAMS  # LoRA: no weight-gradient matmuls
    return flops_per_token * tokens / (PEAK * MFU) / 3600


def _row(cells: str) -> list[str]:
    rows = [line for line in README.splitlines() if line.startswith("| `paper`") and cells in line]
    assert len(rows) == 1, (cells, rows)
    return [c.strip() for c in rows[0].strip("|").split("|")]


IFT = 16 * IFT_EPOCH_TOKENS
CASES = {
    "code IFT, 16 epochs | 1 full FT": gpu_hours(IFT, True),
    "code IFT, 16 epochs | 1 LoRA": gpu_hours(IFT, False),
    "code IFT, 16 epochs | full + LoRA": gpu_hours(IFT, True) + 3 * gpu_hours(IFT, False),
    "code CPT, 20 B tokens | 1 full FT": gpu_hours(CPT_TOKENS, True),
    "code CPT, 20 B tokens | 1 LoRA": gpu_hours(CPT_TOKENS, False),
    "code CPT, 20 B tokens | full + LoRA": (gpu_hours(CPT_TOKENS, True)
                                            + 3 * gpu_hours(CPT_TOKENS, False)),
}


@pytest.mark.parametrize("cells", CASES)
def test_cost_table_matches_the_stated_method(cells):
    hours = CASES[cells]
    row = _row(cells)
    assert row[4] == f"{hours:,.1f}"
    assert row[5] == f"${hours * AWS_PER_GPU_HOUR:,.0f}"
    assert row[6] == f"${hours * GCP_PER_GPU_HOUR:,.0f}"


def test_cost_method_is_stated():
    assert f"{IFT_EPOCH_TOKENS:,}" in README and f"{IFT:,}" in README
    for fragment in ("6N per token", "4N per token", "40% MFU", "989.4 TFLOP/s",
                     "$55.04/h", "$88.49/h", "--dry-run"):
        assert fragment in README, fragment
    for preset in ("`paper`", "`cpu`", "`smoke`"):
        assert f"| {preset} |" in README, preset


def test_walkthrough_has_every_step_in_order():
    steps = [
        "aws configure",
        "ray get-auth-token --generate",
        "python -m lfl_ray.cluster_config cluster/aws-gpu.yaml",
        "ray up cluster/aws-gpu.yaml",
        "ray dashboard cluster/aws-gpu.yaml",
        "export RAY_AUTH_MODE=token",
        "ray job submit --address http://127.0.0.1:8265 --working-dir .",
        "python sweeps/code_ift.py --preset paper",
        "ray job logs",
        "--resume",
        "lfl-ray analyse report --experiment code-ift-paper --tracking-uri",
        "ray down cluster/aws-gpu.yaml",
    ]
    walkthrough = README[README.index("## From zero to results"):README.index("## Where results")]
    position = 0
    for step in steps:  # each step after the previous one
        found = walkthrough.find(step, position)
        assert found >= 0, f"{step!r} missing after position {position}"
        position = found


def test_security_and_storage_are_stated():
    assert re.search(r"MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false mlflow server --workers 1", README)
    assert "**sqlite**" in README and "--storage-path s3://" in README
    for fragment in ("RAY_AUTH_TOKEN_PATH", "~/.ray/auth_token", "kubectl port-forward",
                     "Authorization: Bearer", "ClusterIP"):
        assert fragment in README, fragment
