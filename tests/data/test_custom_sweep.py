"""A custom-regime study end to end: the test writes its own instruction jsonl and text corpus,
declares them in a study file, and runs `lfl-ray sweep` for real on the tiny model (real
local Ray, real sqlite MLflow store). The held-out loss must be measured on the user's data,
each trial's run must hold what an MLflow user looks for (its datasets, a LoRA trial's
adapter, `tokens`), and `lfl-ray eval --adapter RUN_ID` must measure the logged weights again
to the run's own held-out loss. The fast test runs one LoRA trial on instructions; the slow
one full FT and LoRA on a corpus."""

from __future__ import annotations

import json

import pytest
import yaml
from mlflow import MlflowClient

from lfl_ray import cli
from lfl_ray.data import load_regime
from lfl_ray.sweep.cli import main
from lfl_ray.sweep.study import load_study

COMMON = {
    "model": "tiny-llama", "max_train_blocks": 24, "heldout_blocks": 6, "general_blocks": 4,
    "budget": {"steps": 2, "seq_len": 128, "micro_batch_size": 2, "global_batch_size": 2, "milestones": [2],
               "warmup_steps": 0},
    "eval": {"suites": ["heldout_loss", "general_loss"], "batch_size": 6},
    "resources": {"num_workers": 1, "cpus_per_worker": 1.0, "max_concurrent": 1, "max_failures": 0},
}


def _write_instructions(folder):
    rows = [{"question": f"What is {i} times 3? Answer in words.", "answer": f"{i} times 3 is {3 * i}."}
            for i in range(40)]
    (folder / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def _write_corpus(folder):
    for i in range(8):
        (folder / "corpus").mkdir(exist_ok=True)
        (folder / "corpus" / f"mod{i}.py").write_text(
            "".join(f"def scale_{i}_{j}(x):\n    '''Return x times {j}.'''\n    return x * {j}\n\n" for j in range(12)))


def _sweep(tmp_path, name: str, study: dict):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    code = main([str(path), "--tracking-uri", uri, "--storage-path", str(tmp_path / "ray_results")])
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    assert "learning" in experiment.tags["mlflow.note.content"]  # the experiment's description
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    parent = next(r for r in runs if r.data.tags.get("lfl.role") == "sweep")
    children = [r for r in runs if r.data.tags.get("lfl.role") == "trial"]
    return code, client, parent, children, load_study(str(path)).spec()


def _artifact_json(client, run_id: str, path: str) -> dict:
    local = client.download_artifacts(run_id, path)
    with open(local) as handle:
        return json.load(handle)


def _assert_heldout_is_the_users(client, parent, children, spec, prefix: str):
    heldout = load_regime(spec.data_spec(), log=lambda *_: None).heldout
    assert all(d.startswith(prefix) for d in heldout.doc_ids)
    base = _artifact_json(client, parent.info.run_id, "evals/base.json")
    assert base["groups"]["heldout_loss"] == list(heldout.doc_ids)  # the base model scored the user's rows
    tokens = spec.budget.steps * spec.budget.tokens_per_step
    for child in children:
        assert child.info.status == "FINISHED", child.data.tags.get("lfl.error")
        milestone = _artifact_json(client, child.info.run_id, f"evals/milestone_{tokens}.json")
        assert milestone["groups"]["heldout_loss"] == list(heldout.doc_ids)
        assert "Headline/learning" in child.data.metrics and "Headline/forgetting" in child.data.metrics
        assert child.data.metrics["tokens"] == tokens
        assert not set(child.data.params) & set(child.data.metrics)  # no param and metric share a name
        # Its datasets: what it trained on and what it was measured on, each logged once.
        inputs = {i.dataset.name: i for i in client.get_run(child.info.run_id).inputs.dataset_inputs}
        assert sorted(inputs) == sorted([f"{spec.data.label}-train", f"{spec.data.label}-heldout", "general-text"])
        held = inputs[f"{spec.data.label}-heldout"]
        assert json.loads(held.dataset.profile)["num_rows"] == len(heldout)
        assert json.loads(held.dataset.source)["uri"] == spec.data.source
        assert {t.key: t.value for t in held.tags}["mlflow.data.context"] == "heldout"
        artifacts = {a.path for a in client.list_artifacts(child.info.run_id, "adapter")}
        assert ("adapter/adapter_model.safetensors" in artifacts) == (child.data.params["method"] == "lora")


def _eval_again(tmp_path, uri: str, child, name: str) -> dict:
    """`lfl-ray eval --adapter RUN_ID` on a trial's run: the metrics it measured."""
    out = tmp_path / f"eval-{name}.json"
    assert cli.main(["eval", "--adapter", child.info.run_id, "--tracking-uri", uri, "--json", str(out)]) == 0
    return json.loads(out.read_text())["result"]["metrics"]


def test_instruction_study_runs_and_measures_learning_on_the_users_heldout(ray_local, tmp_path):
    _write_instructions(tmp_path)
    study = {"data": {"kind": "instructions", "path": "./qa.jsonl", "prompt_field": "question",
                      "response_field": "answer", "name": "times3"},
             **COMMON, "full": [], "lora": [{"ranks": [4], "lrs": [5e-3], "targets": ["all"]}]}
    code, client, parent, children, spec = _sweep(tmp_path, "custom-ift", study)
    assert code == 0 and parent.info.status == "FINISHED" and len(children) == 1
    assert parent.data.tags["lfl.regime"] == "custom"
    _assert_heldout_is_the_users(client, parent, children, spec, "times3/")
    # The logged adapter, reloaded on the model the run trained, measures the run's own held-out loss.
    measured = _eval_again(tmp_path, f"sqlite:///{tmp_path}/mlruns/mlflow.db", children[0], "lora")
    logged = children[0].data.metrics
    assert measured["heldout_loss"] == pytest.approx(logged["heldout_loss"], abs=1e-5)
    assert measured["general_loss"] == pytest.approx(logged["general_loss"], abs=1e-5)


@pytest.mark.slow
def test_text_corpus_study_runs_on_the_users_heldout(ray_local, tmp_path):
    _write_corpus(tmp_path)
    study = {"data": {"kind": "text", "path": "./corpus"}, **COMMON, "full": [{"lrs": [2e-3]}],
             "lora": [{"ranks": [4], "lrs": [5e-3], "targets": ["all"]}]}
    code, client, parent, children, spec = _sweep(tmp_path, "custom-cpt", study)
    assert code == 0 and len(children) == 2 and {c.data.params["method"] for c in children} == {"full", "lora"}
    _assert_heldout_is_the_users(client, parent, children, spec, "corpus/mod")
    for child in children:  # LoRA: the logged adapter; full FT: the checkpoint folder of lfl.checkpoint
        measured = _eval_again(tmp_path, f"sqlite:///{tmp_path}/mlruns/mlflow.db", child, child.data.params["method"])
        assert measured["heldout_loss"] == pytest.approx(child.data.metrics["heldout_loss"], abs=1e-5)
