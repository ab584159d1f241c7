from lfl_ray.cli import main


def test_data_stats_prints_examples_tokens_and_a_sample(capsys):
    assert main(["data", "stats", "general", "--max-train-blocks", "24", "--heldout-blocks", "16"]) == 0
    out = capsys.readouterr().out
    assert "general (offline, passages, seq_len 256" in out
    assert "train    rows     24" in out and "heldout  rows     16" in out
    assert "tokens" in out and "sample (first train row" in out


def test_data_stats_bad_regime_is_a_clean_error(capsys):
    assert main(["data", "stats", "poetry"]) == 2
    assert "regime: got 'poetry'" in capsys.readouterr().err
