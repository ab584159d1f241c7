"""Study files and bad input: one typed loader, exit 2 naming the field, nothing created."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest

from lfl_ray.errors import ConfigError
from lfl_ray.sweep import FullGrid, LoraGrid, Resources, SweepSpec
from lfl_ray.sweep.cli import main
from lfl_ray.sweep.study import load_study, shipped_studies

pytestmark = pytest.mark.usefixtures("no_ray_work")  # nothing here may start Ray

PRESETS = ("paper", "cpu", "smoke")


def smoke() -> SweepSpec:
    return load_study("code_ift", preset="smoke").spec()


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
    (lambda s: replace(s, full=(FullGrid(lrs=(1e-3, 1e-3)),)), "full[0]", "full-lr0.001"),
]


@pytest.mark.parametrize("mutate,field,value", BAD_SPECS, ids=[b[1] + "=" + b[2] for b in BAD_SPECS])
def test_bad_spec_names_field_value_allowed(mutate, field, value):
    with pytest.raises(ConfigError) as err:
        mutate(smoke()).validate()
    assert err.value.field == field
    message = str(err.value)
    assert value in message and "must" in message


def _exit2(argv, tmp_path, monkeypatch, capsys) -> str:
    """Run ``lfl-ray sweep ARGV``: exit 2, no Ray started, nothing written in the folder."""
    monkeypatch.chdir(tmp_path)
    before = {p for p in tmp_path.rglob("*")}
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert {p for p in tmp_path.rglob("*")} == before  # no MLflow store, no storage folder
    assert "Traceback" not in err
    return err


def test_unreachable_tracking_uri(tmp_path, monkeypatch, capsys):
    err = _exit2(["code_ift", "--preset", "smoke", "--tracking-uri", "http://127.0.0.1:9/"],
                 tmp_path, monkeypatch, capsys)
    assert "--tracking-uri" in err and "http://127.0.0.1:9/" in err and "reachable" in err


def test_unwritable_storage_path(tmp_path, monkeypatch, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    err = _exit2(["code_ift", "--preset", "smoke", "--storage-path", str(blocker / "sub")],
                 tmp_path, monkeypatch, capsys)
    assert "--storage-path" in err and "writable" in err


def test_storage_path_in_proc_is_refused(tmp_path, monkeypatch, capsys):
    err = _exit2(["code_ift", "--preset", "smoke", "--storage-path", "/proc/lfl-x",
                  "--tracking-uri", f"sqlite:///{tmp_path}/m/mlflow.db"], tmp_path, monkeypatch, capsys)
    assert "--storage-path" in err and "/proc/lfl-x" in err


def test_resume_without_previous_sweep(tmp_path, monkeypatch, capsys):
    err = _exit2(["code_ift", "--preset", "smoke", "--resume", "--name", "never-ran"], tmp_path, monkeypatch, capsys)
    assert "--resume" in err and "never-ran" in err and "previous sweep" in err


def test_unknown_preset(tmp_path, monkeypatch, capsys):
    err = _exit2(["code_ift", "--preset", "huge"], tmp_path, monkeypatch, capsys)
    assert "--preset" in err and "huge" in err and "smoke" in err


def test_bad_dashboard_host(tmp_path, monkeypatch, capsys):
    err = _exit2(["code_ift", "--preset", "smoke", "--dashboard-host", "every-interface"], tmp_path, monkeypatch, capsys)
    assert "--dashboard-host" in err and "every-interface" in err and "127.0.0.1" in err


@pytest.mark.parametrize("uri,needle", [
    ("sqlite://x.db", "four slashes"),
    ("NOTADB", "not one"),
])
def test_tracking_store_that_is_not_a_database(tmp_path, monkeypatch, capsys, uri, needle):
    if uri == "NOTADB":
        bad = tmp_path / "notadb.db"
        bad.write_text("this is text, not sqlite\n")
        uri = f"sqlite:///{bad}"
    err = _exit2(["code_ift", "--preset", "smoke", "--tracking-uri", uri], tmp_path, monkeypatch, capsys)
    assert "--tracking-uri" in err and needle in err


# --- study files a user writes --------------------------------------------------------

GOOD = """\
regime: code_ift
model: tiny-llama
max_train_blocks: 64
heldout_blocks: 4
general_blocks: 4
full: [{lrs: [2e-4]}]
lora: [{ranks: [4], lrs: [2e-4, 1e-3], targets: [all]}]
budget: {steps: 2, seq_len: 64, micro_batch_size: 2, global_batch_size: 2, milestones: [2], warmup_steps: 0}
eval: {suites: [heldout_loss, general_loss], batch_size: 4}
resources: {num_workers: 1, cpus_per_worker: 1.0, max_failures: 0}
"""


def test_user_study_reads_yaml_12_numbers(tmp_path, capsys):
    path = tmp_path / "my_study.yaml"
    path.write_text(GOOD)
    assert main([str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "sweep 'my_study'" in out and "\n3 trials;" in out
    spec = load_study(str(path)).spec()
    assert spec.lora[0].lrs == (2e-4, 1e-3) and spec.full[0].lrs == (2e-4,)
    assert len({t.key for t in spec.trials()}) == 3


def test_close_learning_rates_are_distinct_trials():
    spec = replace(smoke(), full=(FullGrid(lrs=(1e-3, 1.2e-3, 1.4e-3)),), lora=())
    trials = spec.validate().trials()
    assert len(trials) == 3 and len({t.key for t in trials}) == 3


# Malformed study files: (file text, the field the error must name). Every level: top, grids,
# budget, resources, eval, lora[*].hiddenkey, seeds; wrong types, unknown keys, typos, nesting.
MALFORMED = [
    ("budgte: {steps: 3}\n", "budgte", "budget"),
    ("budget: {stepz: 3}\n", "budget.stepz", "steps"),
    ("budget: {steps: 2, milestones: [1, 5]}\n", "budget.milestones", None),
    ("budget: [1, 2]\n", "budget", None),
    ("budget: {milestones: 8}\n", "budget.milestones", None),
    ("budget: {warmup_steps: '1'}\n", "budget.warmup_steps", None),
    ("budget: {cooldown_steps: -1}\n", "budget.cooldown_steps", None),
    ("budget: {cooldown_steps: soon}\n", "budget.cooldown_steps", None),
    ("budget: {steps: 8.5}\n", "budget.steps", None),
    ("model: 5\n", "model", None),
    ("full: [{lrs: 0.001}]\n", "full[0].lrs", None),
    ("full: {lrs: [0.001]}\n", "full", None),
    ("full: [{lr: [0.001]}]\n", "full[0].lr", "lrs"),
    ("lora: [{rank: [8]}]\n", "lora[0].rank", "ranks"),
    ("lora: null\n", "lora", None),
    ("lora: [{ranks: ['8']}]\n", "lora[0].ranks[0]", None),
    ("lora: [{ranks: [8], targets: all}]\n", "lora[0].targets", None),
    ("lora: [{hiddenkey: [{key_dropot: 0.1}]}]\n", "lora[0].hiddenkey[0].key_dropot", "key_dropout"),
    ("lora: [{hiddenkey: {key_dropout: 0.1}}]\n", "lora[0].hiddenkey", None),
    ("lora: [{hiddenkey: [{key_dropout: high}]}]\n", "lora[0].hiddenkey[0].key_dropout", None),
    ("lora: [{use_dora: ['yes']}]\n", "lora[0].use_dora[0]", None),
    ("resources: 5\n", "resources", None),
    ("resources: {use_gpu: 'no'}\n", "resources.use_gpu", None),
    ("resources: {use_gpu: no}\n", "resources.use_gpu", None),
    ("resources: {workers: 2}\n", "resources.workers", "num_workers"),
    ("resources: {cpus_per_worker: 3}\n", "resources.cpus_per_worker", None),
    ("seeds: 3\n", "seeds", None),
    ("seeds: [true]\n", "seeds[0]", None),
    ("seeds: [0, 0]\n", "seeds", None),
    ("eval: {batch_size: four}\n", "eval.batch_size", None),
    ("eval: {suites: heldout_loss}\n", "eval.suites", None),
    ("eval: {suites: [heldout_los]}\n", "eval.suites", None),
    ("eval: {sutes: [heldout_loss]}\n", "eval.sutes", "suites"),
    ("eval: [heldout_loss]\n", "eval", None),
    ("heldout_blocks: 0\n", "heldout_blocks", None),
    ("general_blocks: -3\n", "general_blocks", None),
    ("max_train_blocks: lots\n", "max_train_blocks", None),
    ("search: bayes\n", "search", None),
    ("scheduler: {name: asha}\n", "scheduler", None),
    ("name: ''\n", "name", None),
    ("name: '..'\n", "name", None),
    ("name: '.'\n", "name", None),
    ("name: 'a\\nb'\n", "name", None),
    (f"name: {'x' * 500}\n", "name", None),
    ("regime: code_ift\nregime: math_ift\n", "regime", None),
    ("budget: {steps: 2, steps: 3}\n", "steps", None),
    ("lora: [{ranks: [4096]}]\n", "lora[0].ranks", None),
    ("budget: {seq_len: 4096}\n", "budget.seq_len", None),
    ("lora: [{ranks: [4], targets: [[q_proj, qkv_proj]]}]\n", "lora[0].targets", None),
    ("model: ./no-such-model\n", "model", None),
    ("- 1\n- 2\n", "--spec-file", "mapping"),
    ("budget: {steps: [1, 2\n", "--spec-file", "valid YAML"),
]


@pytest.mark.parametrize("text,field,hint", MALFORMED, ids=[f"{i}-{m[1]}" for i, m in enumerate(MALFORMED)])
def test_malformed_study_file_exits_2_naming_the_field(tmp_path, monkeypatch, capsys, text, field, hint):
    """Each override lands on the smoke preset through --spec-file: exit 2, the field named."""
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    err = _exit2(["code_ift", "--preset", "smoke", "--spec-file", str(path)], tmp_path, monkeypatch, capsys)
    assert f"{field}:" in err or f"{field} " in err, err
    if hint:
        assert hint in err


@pytest.mark.parametrize("text,field", [
    ("presets: {cpu: {regime: code_ift}}\npresetz: {}\n", "presetz"),
    ("presets: {cpu: 5}\n", "presets.cpu"),
    ("presets: []\n", "presets"),
    ("default_preset: cpu\nregime: code_ift\n", "default_preset"),
    ("presets: {cpu: {regime: code_ift, model: tiny-llama}}\nextends: no_such_study\n", "STUDY"),
    ("regime: code_ift\nlora: [{ranks: [4], lrs: [1e-3]}, {ranks: [4], lrs: [1e-3]}]\n", "lora[1]"),
])
def test_malformed_study_file_as_the_study(tmp_path, monkeypatch, capsys, text, field):
    path = tmp_path / "study.yaml"
    path.write_text(text)
    err = _exit2([str(path), "--dry-run"], tmp_path, monkeypatch, capsys)
    assert f"{field}:" in err, err


def test_bad_json_spec_file(tmp_path, monkeypatch, capsys):
    path = tmp_path / "bad.json"
    path.write_text('{"budget": {"steps": 10,}}')
    err = _exit2(["code_ift", "--preset", "smoke", "--spec-file", str(path)], tmp_path, monkeypatch, capsys)
    assert "valid JSON" in err


@pytest.mark.parametrize("item,field", [("budget.steps=many", "budget.steps"), ("budget", "--set"),
                                        ("lora[7].ranks=[4]", "lora[7]"), ("budgte.steps=3", "budgte")])
def test_bad_set_items(tmp_path, monkeypatch, capsys, item, field):
    err = _exit2(["code_ift", "--preset", "smoke", "--set", item], tmp_path, monkeypatch, capsys)
    assert field in err


def test_set_and_spec_file_overrides_apply(tmp_path, capsys):
    path = tmp_path / "o.yaml"
    path.write_text("budget: {steps: 12, milestones: [6, 12]}\n")
    code = main(["code_ift", "--preset", "smoke", "--spec-file", str(path), "--set", "seeds=[0, 1]",
                 "--set", "lora[0].lrs=[5e-3, 1e-2]", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    assert "12 steps" in out and "8 trials" in out  # (1 full + 2 + 1 LoRA) x 2 seeds


@pytest.mark.parametrize("study", ["code_ift", "math_ift", "code_cpt", "math_cpt", "regularization"])
@pytest.mark.parametrize("preset", PRESETS)
def test_every_shipped_preset_round_trips_and_validates(study, preset):
    spec = load_study(study, preset=preset).spec().validate()
    assert SweepSpec.from_dict(spec.to_dict()) == spec
    assert SweepSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec  # as sweep_spec.json holds it
    assert spec.name == (f"{preset}-{study}" if study != "regularization" else f"{preset}-regularization-code_ift")


def test_shipped_studies_are_listed_and_open_with_their_command():
    assert set(shipped_studies()) >= {"code_ift", "math_ift", "code_cpt", "math_cpt", "regularization"}
    from lfl_ray.sweep.study import STUDIES_DIR

    for name in shipped_studies():
        head = (STUDIES_DIR / f"{name}.yaml").read_text().splitlines()[:8]
        assert any(f"lfl-ray sweep {name}" in line for line in head), name


def test_regularization_extends_the_regime_study():
    spec = load_study("regularization", preset="cpu", regime="math_cpt").spec().validate()
    base = load_study("math_cpt", preset="cpu").spec()
    assert spec.regime == "math_cpt" and spec.budget == base.budget and spec.eval == base.eval
    assert spec.name == "cpu-regularization-math_cpt"
    assert {t.family for t in spec.trials()} == {"full", "full+wd", "full+dropout", "lora-r16-all",
                                                 "lora-r16-all+hiddenkey"}


def test_paper_preset_follows_the_paper():
    spec = load_study("code_ift", preset="paper").spec()
    assert spec.model == "meta-llama/Llama-2-7b-hf" and spec.optimizer == "lion"
    assert spec.budget.seq_len == 4096 and spec.budget.global_batch_size == 192
    assert spec.budget.milestones == (193, 386, 772, 1544, 3088)  # 1, 2, 4, 8, 16 epochs
    assert {r for g in spec.lora for r in g.ranks} == {16, 64, 256}
    assert all(g.alpha_rule == "2r" for g in spec.lora)
    assert spec.resources.backend == "deepspeed" and spec.resources.zero_stage == 3
    math = load_study("math_ift", preset="paper").spec()
    assert math.budget.seq_len == 1024 and math.budget.global_batch_size == 768


def test_full_ft_params_have_no_lora_fields():
    full, lora = smoke().trials()[:2]
    assert "rank" not in full.params() and "targets" not in full.params()
    assert lora.params()["rank"] == 8 and lora.params()["targets"] == "all"


@pytest.mark.parametrize("argv", [
    [sys.executable, "sweeps/code_ift.py", "--preset", "smoke", "--dry-run"],
    [sys.executable, "-m", "lfl_ray", "sweep", "code_ift", "--preset", "smoke", "--dry-run"],
    [str(__import__("pathlib").Path(sys.executable).parent / "lfl-ray"), "sweep", "sweeps/code_ift.yaml",
     "--preset", "smoke", "--dry-run"],
])
def test_script_module_and_verb_run_the_same_study(argv):
    out = subprocess.run(argv, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert "sweep 'smoke-code_ift'" in out.stdout and "\n3 trials;" in out.stdout


def test_optuna_and_pareto_dry_runs_say_what_they_sample(capsys):
    for search in ("optuna", "pareto"):
        assert main(["code_ift", "--preset", "smoke", "--set", f"search={search}", "--set", "num_samples=5",
                     "--set", "scheduler=none", "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "Optuna TPE draws 5 trials" in out and "log-uniform" in out
        assert "trial key" not in out  # no grid table: the samples are drawn as the sweep runs


def test_a_toy_search_is_one_registration(capsys):
    from lfl_ray.sweep.search import SEARCHES, SearchPlan, register_search

    def first_trial_only(spec):
        trials = spec.trials()[:1]
        from ray import tune

        return SearchPlan({"trial": tune.grid_search([t.key for t in trials])}, 1, trials=trials,
                          description=["search first: the first trial of the grid"])

    register_search("first", first_trial_only)
    try:
        assert main(["code_ift", "--preset", "smoke", "--set", "search=first", "--dry-run"]) == 0
        out = capsys.readouterr().out
        assert "search first: the first trial of the grid" in out and "\n1 trials;" in out
    finally:
        SEARCHES.pop("first")


def test_local_model_folder_targets_and_ranks_are_checked_from_its_config(tmp_path, monkeypatch, capsys):
    from transformers import LlamaConfig

    folder = tmp_path / "my-model"
    LlamaConfig(vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128).save_pretrained(folder)
    err = _exit2(["code_ift", "--preset", "smoke", "--set", f"model={folder}", "--set", "budget.seq_len=128",
                  "--set", "lora[0].targets=[[q_proj, w_in]]", "--dry-run"], tmp_path, monkeypatch, capsys)
    assert "lora[0].targets: got 'w_in'" in err and "q_proj" in err
    err = _exit2(["code_ift", "--preset", "smoke", "--set", f"model={folder}", "--set", "budget.seq_len=128",
                  "--set", "lora[0].ranks=[64]", "--dry-run"], tmp_path, monkeypatch, capsys)
    assert "lora[0].ranks: got 64" in err and "<= 16" in err  # k/v projections are 16 wide
    err = _exit2(["code_ift", "--preset", "smoke", "--set", f"model={folder}", "--dry-run"],
                 tmp_path, monkeypatch, capsys)
    assert "budget.seq_len: got 256" in err and "128" in err


@pytest.mark.parametrize("name", ["", ".", "..", "x" * 500, "a\nb", "a/b"])
def test_bad_name_flag(tmp_path, monkeypatch, capsys, name):
    err = _exit2(["code_ift", "--preset", "smoke", "--name", name], tmp_path, monkeypatch, capsys)
    assert err.startswith("error: name:")


def test_a_full_disk_is_named_as_one():
    import errno

    from lfl_ray.sweep.outcome import describe_error

    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/data/ckpt")
        except OSError as inner:
            raise EOFError("Ran out of input") from inner
    except EOFError as outer:
        assert describe_error(outer).startswith("disk full: [Errno 28] No space left on device")
    assert describe_error(ValueError("x")) == "ValueError: x"


def test_tune_sees_each_grid_trial_as_its_key_with_method_lr_rank_targets_columns():
    """Tune's progress table shows method, lr, rank and targets as columns (not a dict), and
    every resolved Tune config maps back to its own trial."""
    from ray.tune.search.variant_generator import generate_variants

    from lfl_ray.sweep.search import plan_search, trial_of_config

    spec = load_study("code_ift", preset="smoke").spec()
    plan = plan_search(spec)
    assert list(plan.columns) == ["method", "lr", "rank", "targets"]
    configs = [config for _, config in generate_variants(plan.param_space)]
    assert [trial_of_config(spec, c) for c in configs] == spec.trials()
    for config, trial in zip(configs, spec.trials()):
        assert config["method"] == trial.method.name and config["lr"] == trial.lr
        assert config["rank"] == (trial.params().get("rank", "-"))
    optuna = plan_search(replace(spec, search="optuna", num_samples=3, scheduler="none"))
    assert {"sample/method", "sample/rank", "sample/targets"} <= set(optuna.columns)
