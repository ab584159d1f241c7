import argparse

import mlflow

from lfl_ray.analysis.cli import VERBS, main, register


def test_pareto_writes_table_plots_and_logs_them(store, tmp_path, capsys):
    uri, parents = store
    assert main(["pareto", "--experiment", "paper", "--tracking-uri", uri, "--out", str(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "## Pareto front of `paper`" in printed and "### Fronts by rank" in printed
    for name in ("pareto.md", "tradeoff.png", "learning_vs_tokens.png", "forgetting_vs_tokens.png"):
        assert (tmp_path / name).stat().st_size > 0
    logged = {f.path for f in mlflow.MlflowClient(uri).list_artifacts(parents["paper"], "analysis")}
    assert "analysis/tradeoff.png" in logged


def test_recommend_and_diversity_print_markdown(store, tmp_path, capsys):
    uri, _ = store
    assert main(["recommend", "--experiment", "flip", "--tracking-uri", uri,
                 "--out", str(tmp_path), "--no-log"]) == 0
    assert "This sweep disagrees." in capsys.readouterr().out
    assert main(["diversity", "--experiment", "paper", "--tracking-uri", uri,
                 "--out", str(tmp_path)]) == 0
    text = (tmp_path / "diversity.md").read_text()
    assert "| base model | base | 0 | 0.800 |" in text
    assert "| mean of 2 configs | full | final | 0.525 |" in text  # full+wd is its own method
    assert "| mean of 5 configs | lora r=16 | final | 0.774 |" in text  # the stopped one has none
    assert "diversity_unique" in capsys.readouterr().out


def test_weight_verbs_skip_trials_without_checkpoints(store, tmp_path, capsys):
    uri, _ = store
    assert main(["spectrum", "--experiment", "noise", "--tracking-uri", uri,
                 "--out", str(tmp_path), "--no-log"]) == 0
    assert "skipped full: no lfl.checkpoint tag" in capsys.readouterr().out


def test_register_adds_the_analyse_verbs():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="verb"))
    for verb in VERBS:
        args = parser.parse_args(["analyse", verb, "--experiment", "x"])
        assert args.experiment == "x" and callable(args.func)
        assert args.tracking_uri.startswith("sqlite:///") and args.tracking_uri.endswith("mlruns/mlflow.db")
