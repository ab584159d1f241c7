"""MilestoneEvaluator: cached base results, zero deltas for an unchanged model, signs."""

from __future__ import annotations

import time

import cloudpickle
import pytest
import torch

from eval_blocks import random_blocks
from lfl_ray.errors import ConfigError
from lfl_ray.eval import EvalResult, EvalSpec, MilestoneEvaluator

SPEC = EvalSpec(suites=("heldout_loss", "general_loss", "drift", "winogrande"),
                limits={"winogrande": 6}, batch_size=4)


@pytest.fixture
def evaluator(eval_cache):
    return MilestoneEvaluator(SPEC, "tiny-llama", random_blocks(6, 24, seed=0, docs=3),
                              random_blocks(4, 24, seed=1, docs=4))


def test_base_is_computed_once_then_served_from_cache(evaluator, eval_cache):
    first = evaluator.base()
    assert set(evaluator.base_computed) == set(SPEC.suites)
    assert list((eval_cache / "evals").rglob("*.json"))
    # A fresh evaluator (as in the next sweep) must not run the model at all.
    again = MilestoneEvaluator(SPEC, "tiny-llama", evaluator.heldout, evaluator.general)
    start = time.monotonic()
    second = again.base()
    assert again.base_computed == ()
    assert time.monotonic() - start < 2.0
    assert second.metrics == first.metrics and second.items == first.items
    # A different subset is a different base result.
    other = MilestoneEvaluator(EvalSpec(suites=SPEC.suites, limits={"winogrande": 5}, batch_size=4),
                               "tiny-llama", evaluator.heldout, evaluator.general)
    other.base()
    assert "winogrande" in other.base_computed and "heldout_loss" not in other.base_computed


def test_unchanged_model_gives_zero_deltas_and_zero_kl(evaluator, tiny_model, tiny_tokenizer):
    base = evaluator.base()
    tiny_model.train()
    tuned = evaluator(tiny_model, tiny_tokenizer)  # the same weights as the base
    assert tiny_model.training  # mode restored
    flat = evaluator.compare(tuned, base)
    assert tuned.metrics["drift_kl"] == 0.0
    deltas = {k: v for k, v in flat.items() if k.endswith("_delta")}
    assert "heldout_loss_delta" in deltas and "winogrande_margin_delta" in deltas
    assert all(abs(v) < 1e-6 for v in deltas.values()), deltas
    assert flat["learning"] == 0.0 and flat["forgetting"] == 0.0


def test_changed_model_moves_metrics_with_the_right_signs(evaluator, tiny_model, tiny_tokenizer):
    base = evaluator.base()
    with torch.no_grad():
        for p in tiny_model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    tuned = evaluator(tiny_model, tiny_tokenizer)
    flat = evaluator.compare(tuned, base)
    assert tuned.metrics["drift_kl"] > 0 and flat["drift_kl_delta_se"] > 0
    assert flat["learning"] == pytest.approx(base.metrics["heldout_loss"]
                                             - tuned.metrics["heldout_loss"])
    assert flat["forgetting"] == pytest.approx(tuned.metrics["general_loss"]
                                               - base.metrics["general_loss"])
    assert flat["learning_se"] > 0 and flat["heldout_loss_delta"] != 0
    # Results survive JSON and compare the same way.
    again = evaluator.compare(EvalResult.from_json(tuned.to_json()),
                              EvalResult.from_json(base.to_json()))
    assert again["learning"] == pytest.approx(flat["learning"])


def test_evaluator_pickles_without_models(evaluator):
    evaluator.base()
    clone = cloudpickle.loads(cloudpickle.dumps(evaluator))
    assert clone.spec == evaluator.spec and clone._refs.get("drift") is not None
    assert len(cloudpickle.dumps(evaluator)) < 20_000_000


def test_spec_validation_names_the_field():
    with pytest.raises(ConfigError, match="eval.suites"):
        EvalSpec(suites=("heldout_loss", "nope")).validate()
    with pytest.raises(ConfigError, match="eval.limits.hellaswag"):
        EvalSpec(limits={"hellaswag": 0}).validate()
    with pytest.raises(ConfigError, match="eval.forgetting_metric"):
        MilestoneEvaluator(EvalSpec(suites=("heldout_loss",)), "tiny-llama",
                           random_blocks(2, 8, 0, 2), None)
    with pytest.raises(ConfigError, match="general"):
        MilestoneEvaluator(EvalSpec(), "tiny-llama", random_blocks(2, 8, 0, 2), None)
    assert EvalSpec(suites=["gsm8k", "heldout_loss", "general_loss"]).validate().suites[0] == "gsm8k"


def test_general_loss_and_drift_share_one_forward_pass(eval_cache, tiny_model, tiny_tokenizer):
    from lfl_ray.eval.backend import HFBackend
    from lfl_ray.eval.suites import run_suite

    spec = EvalSpec(suites=("general_loss", "drift"), batch_size=4)
    evaluator = MilestoneEvaluator(spec, "tiny-llama", None, random_blocks(8, 24, seed=2, docs=4),
                                   require_primary=False)
    evaluator.base()
    with torch.no_grad():
        for p in tiny_model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    calls = []
    hook = tiny_model.register_forward_hook(lambda *a: calls.append(1))
    try:
        merged = evaluator(tiny_model, tiny_tokenizer)
    finally:
        hook.remove()
    assert len(calls) == 2  # 8 blocks at batch 4, once for both metrics (not 4 passes)
    backend = HFBackend(tiny_model, tiny_tokenizer, batch_size=4)
    for suite, metric in (("general_loss", "general_loss"), ("drift", "drift_kl")):
        alone = run_suite(suite, backend, spec, evaluator.items(suite), drift_ref=evaluator._refs["drift"])
        assert merged.items[metric] == pytest.approx(alone.items[metric], rel=1e-5, abs=1e-7)
        assert merged.metrics[metric] == pytest.approx(alone.metrics[metric], rel=1e-5, abs=1e-7)
    assert merged.metrics["drift_kl"] > 0 and "general_ppl" in merged.metrics


@pytest.mark.parametrize("world", [2, 3, 8])
def test_sharded_loss_evals_join_to_the_unsharded_result(evaluator, tiny_model, tiny_tokenizer, world):
    from lfl_ray.eval.suites import join_loss_shards

    evaluator.base()
    with torch.no_grad():
        for p in tiny_model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    losses = ("heldout_loss", "general_loss", "drift")
    whole = evaluator(tiny_model, tiny_tokenizer, suites=losses)
    parts = [evaluator(tiny_model, tiny_tokenizer, suites=losses, shard=(rank, world))
             for rank in range(world)]  # world 8 > 6 and 4 blocks: some shards are empty
    assert sum(len(p.items["heldout_loss"]) for p in parts) == len(evaluator.heldout)
    joined = join_loss_shards(parts)
    for metric in ("heldout_loss", "general_loss", "drift_kl"):
        assert joined.items[metric] == pytest.approx(whole.items[metric], rel=1e-5, abs=1e-7)
        assert joined.groups[metric] == whole.groups[metric]  # same order, same documents
        for key in (metric, f"{metric}_se"):
            assert joined.metrics[key] == pytest.approx(whole.metrics[key], rel=1e-5, abs=1e-7)
    assert joined.metrics["drift_kl"] > 0
    assert joined.metrics["heldout_ppl"] == pytest.approx(whole.metrics["heldout_ppl"], rel=1e-5)


def test_shard_accepts_only_loss_suites_and_valid_ranks(evaluator, tiny_model, tiny_tokenizer):
    from lfl_ray.eval.milestone import shard_bounds

    with pytest.raises(ValueError, match="only loss suites"):
        evaluator(tiny_model, tiny_tokenizer, suites=("winogrande",), shard=(0, 2))
    with pytest.raises(ValueError, match="rank 2 is not in 0..1"):
        shard_bounds(10, 2, 2)
    assert [shard_bounds(5, r, 2) for r in range(2)] == [(0, 2), (2, 5)]
