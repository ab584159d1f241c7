"""Bad input fails before any Ray or MLflow work, naming the field, the value and what is allowed."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lfl_ray.errors import ConfigError
from lfl_ray.sweep import FullGrid, LoraGrid, Resources
from lfl_ray.sweep.cli import sweep_main
from lfl_ray.sweep.presets import PRESETS, build
from lfl_ray.sweep.space import grid_points, trial_config


def smoke():
    return build("code_ift", "smoke")


BAD_SPECS = [
    (lambda s: replace(s, regime="poetry_ift"), "regime", "poetry_ift"),
    (lambda s: replace(s, model="smollm9"), "model", "smollm9"),
    (lambda s: replace(s, lora=(LoraGrid(ranks=(0,)),)), "lora[0].ranks", "0"),
    (lambda s: replace(s, lora=(LoraGrid(ranks=(-4,)),)), "lora[0].ranks", "-4"),
    (lambda s: replace(s, lora=(LoraGrid(alpha_rule="fixed", fixed_alpha=0),)), "lora[0].fixed_alpha", "0"),
    (lambda s: replace(s, full=(FullGrid(lrs=(-1e-4,)),)), "full[0].lrs", "-0.0001"),
    (lambda s: replace(s, full=(FullGrid(lrs=(float("nan"),)),)), "full[0].lrs", "nan"),
    (lambda s: replace(s, full=(FullGrid(lrs=("fast",)),)), "full[0].lrs", "fast"),
    (lambda s: replace(s, full=(FullGrid(lrs=()),)), "full[0].lrs", "()"),
    (lambda s: replace(s, full=(), lora=()), "full/lora", "((), ())"),
    (lambda s: replace(s, lora=(LoraGrid(targets=(("q_proj", "qkv"),)),)), "lora[0].targets", "qkv"),
    (lambda s: replace(s, lora=(LoraGrid(targets=("everything",)),)), "lora[0].targets", "everything"),
    (lambda s: replace(s, search="bayes"), "search", "bayes"),
    (lambda s: replace(s, scheduler="pbt"), "scheduler", "pbt"),
    (lambda s: replace(s, budget=replace(s.budget, steps=0, milestones=(1,))), "budget.steps", "0"),
    (lambda s: replace(s, budget=replace(s.budget, milestones=(4, 99))), "budget.milestones", "99"),
    (lambda s: replace(s, resources=Resources(backend="horovod")), "resources.backend", "horovod"),
    (lambda s: replace(s, budget=replace(s.budget, global_batch_size=6)), "budget.global_batch_size", "6"),
]


@pytest.mark.parametrize("mutate,field,value", BAD_SPECS, ids=[b[1] + "=" + b[2] for b in BAD_SPECS])
def test_bad_spec_names_field_value_allowed(mutate, field, value):
    with pytest.raises(ConfigError) as err:
        mutate(smoke()).validate()
    assert err.value.field == field
    message = str(err.value)
    assert value in message and "must" in message


def _run(argv, tmp_path, monkeypatch, capsys):
    import ray

    monkeypatch.chdir(tmp_path)
    ray_before = ray.is_initialized()
    code = sweep_main("code_ift", "test", build, PRESETS, default="smoke", argv=argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert ray.is_initialized() == ray_before  # no Ray work started
    assert not (tmp_path / "mlruns").exists()  # no MLflow store made
    return err


def test_unreachable_tracking_uri(tmp_path, monkeypatch, capsys):
    err = _run(["--tracking-uri", "http://127.0.0.1:9/"], tmp_path, monkeypatch, capsys)
    assert "--tracking-uri" in err and "http://127.0.0.1:9/" in err and "reachable" in err


def test_unwritable_storage_path(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    err = _run(["--storage-path", str(blocker / "sub")], tmp_path, monkeypatch, capsys)
    assert "--storage-path" in err and "writable" in err


def test_resume_without_previous_sweep(tmp_path, monkeypatch, capsys):
    err = _run(["--resume", "--name", "never-ran"], tmp_path, monkeypatch, capsys)
    assert "--resume" in err and "never-ran" in err and "previous sweep" in err


def test_unknown_preset(tmp_path, monkeypatch, capsys):
    err = _run(["--preset", "huge"], tmp_path, monkeypatch, capsys)
    assert "--preset" in err and "huge" in err and "smoke" in err


@pytest.mark.parametrize("name,text,needle", [
    ("bad.yaml", "budget: {steps: [1, 2\n", "valid YAML"),
    ("bad.json", '{"budget": {"steps": 10,}}', "valid JSON"),
    ("list.yaml", "- 1\n- 2\n", "mapping"),
    ("field.yaml", "budgett: {steps: 3}\n", "budgett"),
    ("sub.yaml", "budget: {stepz: 3}\n", "budget.stepz"),
    ("value.yaml", "budget: {steps: 2, milestones: [1, 5]}\n", "budget.milestones"),
])
def test_malformed_spec_file(tmp_path, monkeypatch, capsys, name, text, needle):
    path = tmp_path / name
    path.write_text(text)
    err = _run(["--spec-file", str(path)], tmp_path, monkeypatch, capsys)
    assert needle in err


def test_spec_file_overrides_apply(tmp_path, capsys):
    path = tmp_path / "o.yaml"
    path.write_text("budget: {steps: 12, milestones: [6, 12]}\nseeds: [0, 1]\n")
    code = sweep_main("code_ift", "test", build, PRESETS, default="smoke", argv=["--spec-file", str(path), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert "12 steps" in out and "6 trials" in out  # 3 points x 2 seeds


def test_grid_expands_and_configs_validate():
    spec = replace(smoke(), full=(FullGrid(lrs=(1e-4, 3e-4), weight_decays=(0.0, 0.1)),),
                   lora=(LoraGrid(ranks=(8, 16), lrs=(1e-3,), targets=("attention", "all"), alpha_rule="rslora"),))
    points = grid_points(spec)
    assert len(points) == 4 + 4
    assert len({p["key"] for p in points}) == len(points)
    families = {p["family"] for p in points}
    assert {"full", "full+wd", "lora-r8-attention+rslora", "lora-r16-all+rslora"} <= families
    for p in points:
        cfg = trial_config(spec, p)
        assert cfg.lr == p["lr"] and cfg.total_steps == spec.budget.steps
        if p["method"] == "lora":
            assert cfg.method.use_rslora and cfg.method.alpha == spec.lora[0].fixed_alpha


SCRIPT_RUNS = [("code_ift", "paper", None)] + [(r, p, c) for r in ("code_ift", "math_ift", "code_cpt", "math_cpt")
                                                 for p, c in (("cpu", 6), ("smoke", 3))]


@pytest.mark.parametrize("regime,preset,count", SCRIPT_RUNS)
def test_every_sweep_script_dry_runs(regime, preset, count):
    """The scripts themselves, as a user runs them (every preset also validates in-process below)."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, f"sweeps/{regime}.py", "--preset", preset, "--dry-run"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    expected = count or len(grid_points(build(regime, preset)))
    assert f"\n{expected} trials;" in out.stdout
    assert "H100-hours" in out.stdout


@pytest.mark.parametrize("regime", ["code_ift", "math_ift", "code_cpt", "math_cpt"])
@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_validates(regime, preset, capsys):
    code = sweep_main(regime, "test", build, PRESETS, argv=["--preset", preset, "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert f"\n{len(grid_points(build(regime, preset)))} trials;" in out


def test_paper_preset_follows_the_paper():
    spec = build("code_ift", "paper")
    assert spec.model == "meta-llama/Llama-2-7b-hf" and spec.optimizer == "lion"
    assert spec.budget.seq_len == 4096 and spec.budget.global_batch_size == 192
    assert spec.budget.milestones == (193, 386, 772, 1544, 3088)  # 1, 2, 4, 8, 16 epochs
    assert {r for g in spec.lora for r in g.ranks} == {16, 64, 256}
    assert all(g.alpha_rule == "2r" for g in spec.lora)
    assert spec.resources.backend == "deepspeed" and spec.resources.zero_stage == 3
    math = build("math_ift", "paper")
    assert math.budget.seq_len == 1024 and math.budget.global_batch_size == 768


def test_bad_dashboard_host(tmp_path, monkeypatch, capsys):
    err = _run(["--dashboard-host", "every-interface"], tmp_path, monkeypatch, capsys)
    assert "--dashboard-host" in err and "every-interface" in err and "127.0.0.1" in err
