"""``lfl-ray eval`` prints a table of metrics with SEs, for a model, an adapter folder or a
sweep trial's MLflow run id."""

from __future__ import annotations

import json

from lfl_ray.cli import main


def test_eval_command_prints_a_table(eval_cache, capsys, tmp_path):
    out_json = tmp_path / "r.json"
    code = main(["eval", "--model", "tiny-llama", "--suite", "forgetting", "--limit", "3",
                 "--batch-size", "4", "--json", str(out_json)])
    assert code == 0
    text = capsys.readouterr().out
    for metric in ("hellaswag_acc_norm", "arc_challenge_margin", "winogrande_acc", "mc_mean"):
        assert metric in text
    header = text.splitlines()[0].split()
    assert header == ["metric", "value", "se"]
    assert out_json.exists()


def test_eval_command_rejects_a_bad_limit(eval_cache, capsys):
    assert main(["eval", "--model", "tiny-llama", "--suite", "forgetting", "--limit", "0"]) == 2
    assert "eval.limits" in capsys.readouterr().err


def _logged_sweep(tmp_path, heldout, general):
    """A store with a parent run (eval rows, sweep spec) and a LoRA and a full-FT trial run
    whose weights are logged as a sweep logs them; returns (uri, {method: (run id, model)})."""
    import torch
    from peft import LoraConfig, get_peft_model

    from lfl_ray import mlflow_schema as schema
    from lfl_ray.models import load_model
    from lfl_ray.tracking import RunLogger

    uri = f"sqlite:///{tmp_path}/mlruns/mlflow.db"
    experiment_id = schema.ensure_experiment(uri, "logged")
    parent = schema.start_parent(uri, experiment_id, name="logged", regime="custom", params={},
                                 spec_json={"eval": {"suites": ["heldout_loss", "general_loss"], "batch_size": 3}},
                                 resume=False)
    schema.log_eval_data(uri, parent, heldout, general)
    runs = {}
    torch.manual_seed(1)
    lora = get_peft_model(load_model("tiny-llama", seed=3),
                          LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter")
    run_id = schema.child_run(uri, experiment_id, parent, key="lora-key", family="lora-r4", regime="custom",
                              params={"method": "lora", "model": "tiny-llama", "seed": 3})
    schema.log_adapter(uri, run_id, tmp_path / "adapter")
    # Its last milestone: optimizer step 2, 96 tokens (the step is not the tokens), logged as the loop does.
    logger = RunLogger(uri, run_id)
    schema.log_training(logger, step=2, tokens=96, train_loss=9.0, lr=1e-3, tokens_per_s=100.0)
    schema.log_milestone(logger, step=2, tokens=96, metrics={"learning": 0.0, "heldout_loss": 9.0},
                         eval_json={"metrics": {}})
    runs["lora"] = (run_id, lora.eval())
    full = load_model("tiny-llama", seed=5)
    with torch.no_grad():
        full.model.norm.weight.mul_(1.5)  # trained: not the seed's model any more
    full.save_pretrained(tmp_path / "checkpoint" / "model")
    run_id = schema.child_run(uri, experiment_id, parent, key="full-key", family="full", regime="custom",
                              params={"method": "full", "model": "tiny-llama", "seed": 5})
    schema.set_checkpoint(uri, run_id, str(tmp_path / "checkpoint"))
    runs["full"] = (run_id, full.eval())
    return uri, runs


def test_eval_of_a_trial_run_id_measures_its_logged_weights_on_the_sweeps_rows(eval_cache, tmp_path, capsys,
                                                                                 tiny_tokenizer):
    from eval_blocks import random_blocks

    from lfl_ray.eval.milestone import MilestoneEvaluator
    from lfl_ray.eval.spec import EvalSpec

    heldout, general = random_blocks(5, 24, seed=0, docs=5), random_blocks(4, 24, seed=1, docs=4)
    uri, runs = _logged_sweep(tmp_path, heldout, general)
    spec = EvalSpec(suites=("heldout_loss", "general_loss"), batch_size=3)
    evaluator = MilestoneEvaluator(spec, "tiny-llama", heldout, general, require_primary=False)
    for method, (run_id, model) in runs.items():
        expected = evaluator(model, tiny_tokenizer).metrics
        out = tmp_path / f"{method}.json"
        assert main(["eval", "--adapter", run_id, "--tracking-uri", uri, "--json", str(out)]) == 0
        measured = json.loads(out.read_text())["result"]["metrics"]
        for name in ("heldout_loss", "general_loss"):
            assert abs(measured[name] - expected[name]) < 1e-6, (method, name)
        text = capsys.readouterr().out
        assert f"trial {method}-key (run {run_id}, {method})" in text
        if method == "lora":
            assert "logged by the run at its last milestone (96 tokens): heldout_loss 9.000000" in text
        assert json.loads(out.read_text())["spec"]["batch_size"] == 3  # the sweep's settings


def test_eval_names_what_is_wrong_with_a_run_id(eval_cache, tmp_path, capsys):
    from eval_blocks import random_blocks

    blocks = random_blocks(2, 16, seed=0, docs=2)
    uri, runs = _logged_sweep(tmp_path, blocks, blocks)
    assert main(["eval", "--adapter", "0" * 32, "--tracking-uri", uri]) == 2
    assert "--adapter" in capsys.readouterr().err
    assert main(["eval", "--adapter", runs["lora"][0], "--tracking-uri", uri, "--model", "smollm2-135m-instruct"]) == 2
    assert "--model" in capsys.readouterr().err
    assert main(["eval", "--suite", "loss"]) == 2  # no model and no run id
    assert "--model" in capsys.readouterr().err
