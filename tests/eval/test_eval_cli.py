"""``lfl-ray eval`` prints a table of metrics with SEs."""

from __future__ import annotations

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
