"""`lfl-ray sweep --dry-run` on models that are not built in: a local HF folder and a hub id
known only by its config (the hub simulated by an HF cache holding just config.json, offline).
Costs are finite (from the config's parameter count), presets resolve per architecture,
explicit module names are checked before any Ray work."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lfl_ray.model_config import layout
from lfl_ray.sweep.cli import main
from lfl_ray.sweep.cost import CPU_FLOPS

pytestmark = pytest.mark.usefixtures("no_ray_work")  # dry runs: nothing here may start Ray

SMALL = dict(vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
             num_key_value_heads=1, max_position_embeddings=512)
HALF_BILLION = dict(vocab_size=32000, hidden_size=2048, intermediate_size=8192, num_hidden_layers=8,
                    num_attention_heads=16, num_key_value_heads=4, head_dim=128, max_position_embeddings=4096)
"""Big enough for costs that show in the table's two decimals; only its config is ever written."""


def _costs(out: str) -> list[float]:
    """The PFLOPs column of the plan table's trial rows."""
    rows = [line for line in out.splitlines() if re.match(r"\s*\d+\s+(full|lora)", line)]
    assert rows, out
    return [float(line.split()[6]) for line in rows]


def test_local_folder_dry_run_prints_finite_costs_and_its_own_presets(tmp_path, monkeypatch, capsys):
    from transformers import AutoConfig

    config = AutoConfig.for_model("qwen3", **SMALL, head_dim=16)
    config.save_pretrained(tmp_path / "my-qwen")
    monkeypatch.chdir(tmp_path)
    assert main(["code_ift", "--preset", "smoke", "--set", f"model={tmp_path / 'my-qwen'}", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "nan" not in out
    assert "'all' on this qwen3 model: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj" in out
    # 6N per token for full FT, N = the matmul parameters of the config (the embedding is a lookup).
    n = layout(config).matmul_params
    tokens = 8 * 4 * 256
    assert f"{6 * n * tokens / 1e15:.2f}" in out and "CPU-h" in out
    assert 6 * n * tokens / CPU_FLOPS > 0


def test_explicit_modules_of_a_local_folder_are_checked_before_ray(tmp_path, monkeypatch, capsys):
    from transformers import AutoConfig

    AutoConfig.for_model("phi3", **SMALL, pad_token_id=0).save_pretrained(tmp_path / "my-phi")
    monkeypatch.chdir(tmp_path)
    code = main(["code_ift", "--preset", "smoke", "--set", f"model={tmp_path / 'my-phi'}",
                 "--set", "lora[0].targets=[[q_proj, v_proj]]", "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2, err  # no_ray_work: any Ray start fails the test
    assert "lora[0].targets: got ['q_proj', 'v_proj']" in err
    for name in ("qkv_proj", "o_proj", "gate_up_proj", "down_proj"):
        assert name in err


def test_hub_id_given_only_its_config_dry_runs_offline(tmp_path):
    """The real hub loading code, on an HF cache with just config.json and HF_HUB_OFFLINE=1."""
    from transformers import AutoConfig

    snapshot = tmp_path / "hf" / "hub" / "models--acme--tiny-gemma" / "snapshots" / ("0" * 40)
    config = AutoConfig.for_model("gemma3_text", **HALF_BILLION, sliding_window=512)
    config.save_pretrained(snapshot)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0" * 40)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_CACHE": str(tmp_path / "hf" / "hub"),
           "HF_HUB_OFFLINE": "1"}
    cli = Path(sys.executable).parent / "lfl-ray"
    argv = [str(cli), "sweep", "code_ift", "--preset", "smoke", "--set", "model=acme/tiny-gemma", "--dry-run"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "nan" not in done.stdout
    full = _costs(done.stdout)[0]  # the full-FT row comes first: 6N per token
    assert full == round(6 * layout(config).matmul_params * 8 * 4 * 256 / 1e15, 2) > 0
    assert "'attention' on this gemma3_text model: q_proj, k_proj, v_proj, o_proj" in done.stdout
    # Not in the cache and offline: said so, and the dry run still goes on.
    argv[-2] = "model=acme/not-cached"
    done = subprocess.run(argv, capture_output=True, text=True, timeout=180, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert "config not available offline" in done.stdout
    assert json.loads((snapshot / "config.json").read_text())["model_type"] == "gemma3_text"


def test_mlflow_params_and_the_reader_name_the_modules_a_preset_means(tmp_path):
    from dataclasses import replace

    from transformers import AutoConfig

    from lfl_ray.analysis.runs import Trial
    from lfl_ray.mlflow_schema import Param
    from lfl_ray.sweep.study import load_study
    from lfl_ray.sweep.trainable import trial_params

    AutoConfig.for_model("phi3", **SMALL, pad_token_id=0).save_pretrained(tmp_path / "my-phi")
    spec = replace(load_study("code_ift", preset="smoke").spec(), model=str(tmp_path / "my-phi"))
    by_family = {t.family: trial_params(spec, t) for t in spec.trials()}
    assert by_family["lora-r8-all"][Param.TARGET_MODULES] == "o_proj+qkv_proj+gate_up_proj+down_proj"  # module order
    assert by_family["lora-r8-attention"][Param.TARGET_MODULES] == "o_proj+qkv_proj"
    assert Param.TARGET_MODULES not in by_family["full"]
    params = {k: str(v) for k, v in by_family["lora-r8-attention"].items()}
    trial = Trial("r", "k", "lora-r8-attention", "code_ift", "FINISHED", params, ())
    assert trial.targets == "attention" and trial.target_modules == ("o_proj", "qkv_proj")
