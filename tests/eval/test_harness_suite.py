"""lm-eval tasks as lfl-ray suites: scored through lfl-ray's backend equal to lm-eval per
document, and paired with the base model like the built-in suites."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from eval_blocks import random_blocks
from parity_models import model_folder, run_lm_eval

from lfl_ray.errors import ConfigError
from lfl_ray.eval import harness_suite
from lfl_ray.eval.backend import HFBackend
from lfl_ray.eval.spec import EvalSpec
from lfl_ray.eval.suites import load_items, run_suite

LAMBADA = "lm_eval:lambada_openai"


def test_lambada_and_boolq_through_lfl_ray_equal_lm_eval(tmp_path, eval_cache):
    from lfl_ray.models import load_model, load_tokenizer

    harness_suite.load_task.cache_clear()  # write the overrides into this test's cache
    folder = model_folder(tmp_path / "tiny", load_tokenizer("tiny-llama"), load_model("tiny-llama"))
    model = load_model(str(folder), dtype=torch.float64).eval()
    backend = HFBackend(model, load_tokenizer(str(folder)), batch_size=8)
    spec = EvalSpec(suites=(LAMBADA, "lm_eval:boolq"),
                    limits={LAMBADA: 40, "lm_eval:boolq": 30}).validate()
    ours = {}
    with torch.no_grad():
        for suite in spec.suites:
            items = load_items(suite, spec)
            ours[suite] = (items, run_suite(suite, backend, spec, items))
    # lm-eval's CLI on the same override folders and documents.
    for suite, (items, result) in ours.items():
        name, _ = harness_suite.load_task(harness_suite.task_of(suite))
        tasks_dir = eval_cache / "lm_eval_tasks" / harness_suite.task_of(suite)
        rows = [item["doc_id"] for item in items]
        results, logged = run_lm_eval(folder, tasks_dir, {name: rows}, tmp_path / suite, "float64")
        prefix = harness_suite.metric_prefix(suite)
        assert result.items[f"{prefix}_acc"] == [float(logged[name][r]["acc"]) for r in rows]
        assert result.metrics[f"{prefix}_acc"] == pytest.approx(results[name]["acc,none"])
        if suite == LAMBADA:
            theirs = [float(logged[name][r]["filtered_resps"][0][0]) for r in rows]
            np.testing.assert_allclose(result.items[f"{prefix}_perplexity_per_doc"], theirs,
                                       rtol=0, atol=1e-8)
            assert result.metrics[f"{prefix}_perplexity"] == pytest.approx(
                results[name]["perplexity,none"], rel=1e-9)


def test_an_lm_eval_forgetting_suite_is_paired_with_the_base_model(eval_cache):
    from lfl_ray.eval.milestone import MilestoneEvaluator
    from lfl_ray.models import load_model, load_tokenizer

    spec = EvalSpec(suites=("heldout_loss", LAMBADA), limits={LAMBADA: 24}, batch_size=8)
    evaluator = MilestoneEvaluator(spec, "tiny-llama", random_blocks(8, 32, 0, 4), None,
                                   require_primary=False)
    base = evaluator.base()
    assert "lm_eval_lambada_openai_acc" in base.metrics
    tuned = load_model("tiny-llama")
    with torch.no_grad():  # a "trial": the same model, perturbed
        for p in tuned.parameters():
            p.add_(0.05 * torch.randn_like(p))
    flat = evaluator.compare(evaluator(tuned, load_tokenizer("tiny-llama")), base)
    key = "lm_eval_lambada_openai_perplexity_per_doc"
    assert flat[f"{key}_delta"] != 0 and flat[f"{key}_delta_se"] > 0
    assert "lm_eval_lambada_openai_acc_delta_se" in flat
    assert not any(k.endswith("_stderr_delta") for k in flat)
    assert evaluator.base().metrics == base.metrics and evaluator.base_computed == ()  # cached


def test_lm_eval_suite_names_are_checked():
    EvalSpec(suites=("heldout_loss", "lm_eval:mmlu@hub"), limits={"lm_eval:mmlu@hub": 5}).validate()
    with pytest.raises(ConfigError, match="lm_eval:<task name>"):
        harness_suite.task_of("lm_eval:")
    assert harness_suite.task_of("lm_eval:boolq@hub") == "boolq"


def test_generation_requests_are_answered_by_the_backend_in_batches(tiny_model, tiny_tokenizer):
    from lm_eval.api.instance import Instance

    backend = HFBackend(tiny_model.eval(), tiny_tokenizer, batch_size=4)
    prompts = ["def add(a, b):", "Question: 2 + 2 =", "The capital of France is"]
    requests = [Instance(request_type="generate_until", doc={}, idx=0,
                         arguments=(p, {"until": ["\n"], "max_gen_toks": 6})) for p in prompts]
    got = harness_suite.backend_lm(backend).generate_until(requests)
    want = [texts[0] for texts in backend.generate(prompts, max_new_tokens=6, stop=("\n",), desc="")]
    assert got == want and all("\n" not in text for text in got)
