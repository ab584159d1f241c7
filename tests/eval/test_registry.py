"""The eval-suite registry: every suite runs on the tiny model, one registration adds a suite,
a study's own generation and multiple-choice evals, and mc_mean stays the paper's three."""

from __future__ import annotations

import json

import pytest
import torch

from eval_blocks import random_blocks
from lfl_ray.errors import ConfigError
from lfl_ray.eval import EvalSpec, MilestoneEvaluator
from lfl_ray.eval.registry import (Suite, aggregates, get_suite, register_suite, suite_names,
                                   unregister_suite)
from lfl_ray.eval.result import EvalResult
from lfl_ray.eval.spec import CustomEval

LIMIT = 2
"""Items per suite in the registry walk: it checks wiring, not numbers."""


def test_the_shipped_suites_are_registered():
    assert set(suite_names()) >= {"heldout_loss", "general_loss", "drift", "heldout_drift",
                                  "humaneval", "mbpp", "gsm8k", "diversity", "hellaswag",
                                  "arc_challenge", "winogrande"}
    assert get_suite("lm_eval:lambada_openai").kind == "generation"
    with pytest.raises(ConfigError, match=r"eval.suites: got 'hellaswa'.*did you mean `hellaswag`"):
        EvalSpec(suites=("heldout_loss", "hellaswa")).validate()


@pytest.mark.parametrize("name", sorted(set(suite_names())))
def test_every_registered_suite_runs_on_the_tiny_model(name, eval_cache, tiny_model, tiny_tokenizer):
    """Walks the registry: each suite loads its fixed items, scores the base model, scores a
    perturbed model, and every score it offers as primary comes out with paired deltas."""
    suite = get_suite(name)
    spec = EvalSpec(suites=(name,), limits={name: LIMIT}, batch_size=2, max_new_tokens=8,
                    learning_metric=next(iter(suite.scores)), forgetting_metric=next(iter(suite.scores)))
    evaluator = MilestoneEvaluator(spec.validate(), "tiny-llama", random_blocks(4, 16, seed=0, docs=2),
                                   random_blocks(4, 16, seed=1, docs=2))
    base = evaluator.base()
    with torch.no_grad():
        for p in tiny_model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    tuned = evaluator(tiny_model, tiny_tokenizer)
    metrics = evaluator.compare(tuned, base)
    for score in suite.scores:
        assert score in metrics and f"{score}_delta" in metrics and f"{score}_delta_se" in metrics
    assert "learning" in metrics and "forgetting" in metrics


def test_a_toy_suite_is_one_registration(eval_cache, tiny_model, tiny_tokenizer):
    """A new suite: a loader, a scorer, one register_suite call. It validates in a spec, runs
    through the evaluator and can be the learning metric (higher is better)."""
    def load(spec, **_):
        return ["The capital of France is", "One plus one is"]

    def run(backend, spec, prompts, reference=None):
        outs = backend.generate(prompts, max_new_tokens=4, seed=spec.seed)
        values = [float(len(o[0]) > 0) for o in outs]
        return EvalResult(metrics={"toy_nonempty": sum(values) / len(values), "toy_nonempty_se": 0.0},
                          items={"toy_nonempty": values}, groups={"toy_nonempty": ["a", "b"]})

    register_suite(Suite(name="toy", load=load, run=run, scores={"toy_nonempty": True}))
    try:
        spec = EvalSpec(suites=("toy", "general_loss"), learning_metric="toy_nonempty").validate()
        evaluator = MilestoneEvaluator(spec, "tiny-llama", None, random_blocks(2, 16, seed=1, docs=2))
        base = evaluator.base()
        metrics = evaluator.compare(evaluator(tiny_model, tiny_tokenizer), base)
        assert metrics["learning"] == pytest.approx(metrics["toy_nonempty_delta"])
        with pytest.raises(ValueError, match="already registered"):
            register_suite(Suite(name="toy", load=load, run=run))
    finally:
        unregister_suite("toy")
    with pytest.raises(ConfigError, match="eval.suites: got 'toy'"):
        EvalSpec(suites=("toy",)).validate()


def test_a_new_multiple_choice_suite_does_not_change_mc_mean():
    from lfl_ray.eval.catalog import multiple_choice

    register_suite(Suite(name="toy_mc", kind="choice", load=lambda spec, **_: [],
                         run=lambda *a: EvalResult(), scores={"toy_mc_acc": True}))
    try:
        assert list(aggregates()["mc_mean"].parts) == ["hellaswag", "arc_challenge", "winogrande"]
        assert aggregates()["mc_mean"].parts == multiple_choice.HEADLINE
    finally:
        unregister_suite("toy_mc")


def test_heldout_drift_is_zero_for_the_base_and_shares_the_heldout_pass(eval_cache, tiny_model,
                                                                         tiny_tokenizer):
    spec = EvalSpec(suites=("heldout_loss", "heldout_drift", "general_loss"), batch_size=4,
                    forgetting_metric="heldout_kl").validate()
    evaluator = MilestoneEvaluator(spec, "tiny-llama", random_blocks(8, 16, seed=0, docs=4),
                                   random_blocks(2, 16, seed=1, docs=2))
    base = evaluator.base()
    assert base.metrics["heldout_kl"] == 0.0
    untouched = evaluator(tiny_model, tiny_tokenizer)
    assert untouched.metrics["heldout_kl"] == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        for p in tiny_model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    calls = []
    hook = tiny_model.register_forward_hook(lambda *a: calls.append(1))
    try:
        tuned = evaluator(tiny_model, tiny_tokenizer, suites=("heldout_loss", "heldout_drift"))
    finally:
        hook.remove()
    assert len(calls) == 2  # 8 blocks at batch 4: one pass for the loss and the KL
    assert tuned.metrics["heldout_kl"] > 0
    assert evaluator.compare(tuned, base)["forgetting"] == pytest.approx(tuned.metrics["heldout_kl"])


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_a_study_s_own_generation_and_multiple_choice_evals(tmp_path, eval_cache, tiny_model,
                                                            tiny_tokenizer):
    qa = _write_jsonl(tmp_path / "qa.jsonl", [{"prompt": f"Say {w}.", "reference": w, "id": w}
                                              for w in ("yes", "no", "maybe")])
    mc = _write_jsonl(tmp_path / "mc.jsonl", [
        {"question": "2 + 2 = ?", "choices": ["3", "4", "5"], "answer": 1},
        {"question": "Sky colour?", "choices": ["blue", "green"], "answer": "blue"}])
    scorer = tmp_path / "score.py"
    scorer.write_text("def score(completion, reference):\n    return 1.0 if completion else 0.5\n")
    spec = EvalSpec(suites=("heldout_loss", "qa", "qa_py", "quiz"), learning_metric="qa_score",
                    forgetting_metric="quiz_acc_norm", max_new_tokens=4, chat=False,
                    custom=(CustomEval(name="qa", path=qa, max_new_tokens=4),
                            CustomEval(name="qa_py", path=qa, scorer=str(scorer), max_new_tokens=4),
                            CustomEval(name="quiz", path=mc, kind="multiple_choice"))).validate()
    evaluator = MilestoneEvaluator(spec, "tiny-llama", random_blocks(2, 16, seed=0, docs=2), None)
    base = evaluator.base()
    assert len(base.items["qa_score"]) == 3 and base.metrics["qa_score"] == 0.0  # random model
    assert set(base.items["qa_py_score"]) <= {0.5, 1.0}  # the user's score(), run in the sandbox
    assert len(base.items["quiz_acc_norm"]) == 2
    metrics = evaluator.compare(evaluator(tiny_model, tiny_tokenizer), base)
    assert metrics["learning"] == pytest.approx(0.0) and metrics["forgetting"] == pytest.approx(0.0)


@pytest.mark.parametrize("custom, rows, match", [
    (dict(name="qa", path="missing.jsonl"), None, r"eval.custom\[0\].path: got 'missing.jsonl'"),
    (dict(name="qa", path="{f}", prompt_field="question"), [{"prompt": "p", "reference": "r"}],
     r"eval.custom\[0\].prompt_field: got 'question'; is not a field of .*fields seen: \['prompt', 'reference'\]"),
    (dict(name="qa", path="{f}"), [], r"eval.custom\[0\].path: .*has no rows"),
    (dict(name="qa", path="{f}", scorer="fuzzy"), [{"prompt": "p", "reference": "r"}],
     r"eval.custom\[0\].scorer: got 'fuzzy'"),
    (dict(name="humaneval", path="{f}"), [{"prompt": "p", "reference": "r"}],
     r"eval.custom\[0\].name: got 'humaneval'; is a built-in"),
    (dict(name="quiz", path="{f}", kind="multiple_choice"), [{"question": "q", "choices": ["a"], "answer": 0}],
     r"eval.custom\[0\].choices_field"),
    (dict(name="quiz", path="{f}", kind="multiple_choice"), [{"question": "q", "choices": ["a", "b"], "answer": 5}],
     r"eval.custom\[0\].answer_field: got 5"),
])
def test_bad_custom_evals_name_the_field(tmp_path, eval_cache, custom, rows, match):
    if rows is not None:
        custom = dict(custom, path=_write_jsonl(tmp_path / "rows.jsonl", rows))
    name = custom["name"]
    with pytest.raises(ConfigError, match=match):
        spec = EvalSpec(suites=("heldout_loss", name), custom=(CustomEval(**custom),)).validate()
        MilestoneEvaluator(spec, "tiny-llama", random_blocks(2, 16, seed=0, docs=2), None,
                           require_primary=False).items(name)


def test_a_declared_custom_eval_must_be_run():
    with pytest.raises(ConfigError, match=r"eval.custom\[0\].name: got 'qa'; is declared but not run"):
        EvalSpec(custom=(CustomEval(name="qa", path="x.jsonl"),)).validate()
