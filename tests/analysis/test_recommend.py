import pytest

from lfl_ray.analysis.recommend import (AGREES, DISAGREES, NOISE, UNTESTED, recommend,
                                        to_markdown)
from lfl_ray.analysis.runs import load_sweep


@pytest.fixture(scope="module")
def advice(store):
    out = {}
    for name in ("paper", "flip", "noise", "seeds"):
        sweep = load_sweep(name, store[0])
        out[name] = (sweep, {r.topic: r for r in recommend(sweep)})
    return out


TOPICS = ("Learning rate", "LoRA vs full FT", "Target modules", "Rank", "Forgetting budget",
          "LoRA alpha", "Regularization", "Diversity")


@pytest.mark.parametrize("topic", TOPICS)
def test_verdicts_flip_when_the_data_flips(advice, topic):
    assert advice["paper"][1][topic].verdict == AGREES
    assert advice["flip"][1][topic].verdict == DISAGREES
    assert advice["paper"][1][topic].advice != advice["flip"][1][topic].advice


def test_advice_names_what_this_sweep_found(advice):
    paper, flip = advice["paper"][1], advice["flip"][1]
    assert paper["Learning rate"].advice.startswith("Use lr 1e-05 for full FT and 1e-04 for LoRA")
    assert "10x" in paper["Learning rate"].advice
    assert flip["Learning rate"].advice.startswith("Use lr 1e-03 for full FT and 1e-04 for LoRA")
    assert "0.1x" in flip["Learning rate"].advice
    assert "learns less and forgets less" in paper["LoRA vs full FT"].advice
    assert "learns more and forgets more" in flip["LoRA vs full FT"].advice
    assert paper["Target modules"].advice.startswith("Target all modules")
    assert flip["Target modules"].advice.startswith("Target attention only")
    assert "r=64 learns more than r=16" in paper["Rank"].advice
    assert "r=64 learns less than r=16" in flip["Rank"].advice
    assert paper["LoRA alpha"].advice.startswith("Keep alpha = 2r")
    # Budgets: the cheapest point is LoRA in one sweep and full FT in the other.
    assert "lora" in paper["Forgetting budget"].evidence[0].split("use ")[1][:6]
    assert "full" in flip["Forgetting budget"].evidence[0].split("use ")[1][:6]
    # Every comparison of two single-seed trials carries a paired SE.
    assert "paired over 40 items" in paper["LoRA vs full FT"].evidence[0]


def test_differences_within_noise_are_called_so(advice):
    noise = advice["noise"][1]["LoRA vs full FT"]
    assert noise.verdict == NOISE
    assert "learns about as much and forgets about as much" in noise.advice
    assert advice["noise"][1]["LoRA alpha"].verdict == UNTESTED


def test_seeds_give_seed_spread_uncertainty(advice):
    rec = advice["seeds"][1]["LoRA vs full FT"]
    assert "seed spread" in rec.evidence[0]
    assert rec.verdict == AGREES  # LoRA learns and forgets less by more than 2 seed SEs


def test_markdown_carries_every_topic_and_verdict(advice):
    sweep, recs = advice["flip"]
    text = to_markdown(sweep, list(recs.values()))
    for topic in TOPICS:
        assert f". {topic}" in text
    assert text.count("This sweep disagrees.") == len(TOPICS)
    assert "1 failed" in text


def test_a_sweep_without_trials_says_nothing_was_tested(store, tmp_path):
    from lfl_ray.analysis.report import build_report

    sweep = load_sweep("empty", store[0])
    assert {r.verdict for r in recommend(sweep)} == {UNTESTED}
    page = build_report(sweep, tmp_path, log_to_mlflow=False).read_text()
    assert "This sweep: not tested here." in page and "<img" not in page
