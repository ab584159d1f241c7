"""Run one suite on one model: pick its fixed items, query the backend, score, summarize.

A suite's items depend only on the spec (limit, seed) and the data, never on the model, so
the base model and every trial are scored on the same items in the same order.
"""

from __future__ import annotations

import math

import numpy as np

from lfl_ray.errors import ConfigError
from lfl_ray.eval import diversity, gsm8k, humaneval, mbpp
from lfl_ray.eval.backend import HFBackend
from lfl_ray.eval.items import fingerprint, subset_indices, tensor_fingerprint
from lfl_ray.eval.multiple_choice import choice_scores, score_items
from lfl_ray.eval.prompts import uses_chat
from lfl_ray.eval.result import EvalResult
from lfl_ray.eval.spec import LM_EVAL_PREFIX, MC_SUITES, EvalSpec
from lfl_ray.eval.stats import mean_se

N_SAMPLES_KEPT = 3
"""Generations kept per suite in EvalResult.samples."""

MC_HEADLINE = {"hellaswag": "acc_norm", "arc_challenge": "acc_norm", "winogrande": "acc"}


def load_items(suite: str, spec: EvalSpec, *, heldout=None, general=None):
    """The fixed (seeded) subset of a suite's items: TokenBlocks for loss suites, else a list."""
    if suite.startswith(LM_EVAL_PREFIX):
        from lfl_ray.eval import harness_suite

        return harness_suite.load_items(suite, spec)
    if suite in ("heldout_loss", "general_loss", "drift"):
        blocks = heldout if suite == "heldout_loss" else general
        if blocks is None:
            field = "heldout" if suite == "heldout_loss" else "general"
            raise ConfigError(field, None, f"suite {suite!r} needs TokenBlocks")
        return blocks.select(subset_indices(suite, spec, len(blocks)))
    if suite in ("humaneval", "diversity"):
        everything = humaneval.load_problems()
    elif suite == "mbpp":
        everything = mbpp.load_problems()
    elif suite == "gsm8k":
        everything = gsm8k.load_problems()
    else:
        from lfl_ray.eval import arc, hellaswag, winogrande

        everything = {"hellaswag": hellaswag, "arc_challenge": arc,
                      "winogrande": winogrande}[suite].load_items()
    return [everything[i] for i in subset_indices(suite, spec, len(everything))]


def items_fingerprint(items) -> str:
    """Hash of what a suite evaluates (for the base-result cache key)."""
    if hasattr(items, "input_ids"):
        return tensor_fingerprint(items.input_ids, items.labels, items.attention_mask)
    return fingerprint([getattr(i, "__dict__", i) for i in items])


def _summary(result: EvalResult, metric: str, values: list[float], groups: list[str]) -> None:
    mean, se = mean_se(values, groups)
    result.metrics[metric] = mean
    result.metrics[f"{metric}_se"] = se
    result.items[metric] = [float(v) for v in values]
    result.groups[metric] = [str(g) for g in groups]


def _hf(backend, suite):
    backend = getattr(backend, "inner", backend)  # a ScriptedBackend scores with its model
    if not isinstance(backend, HFBackend):
        raise ConfigError("suite", suite, "loss and drift suites need the Hugging Face backend")
    return backend.model


def run_loss(suite: str, backend, spec: EvalSpec, blocks, drift_ref=None) -> EvalResult:
    from lfl_ray.eval.loss import block_drift, block_losses

    model = _hf(backend, suite)
    result = EvalResult()
    if suite == "drift":
        values = block_drift(model, blocks, drift_ref, batch_size=spec.batch_size)
        _summary(result, "drift_kl", values, blocks.doc_ids)
        return result
    values = block_losses(model, blocks, batch_size=spec.batch_size, desc=suite)
    _summary(result, suite, values, blocks.doc_ids)
    result.metrics[suite.replace("_loss", "_ppl")] = math.exp(result.metrics[suite])
    return result


def run_code(suite: str, backend, spec: EvalSpec, problems: list[dict]) -> EvalResult:
    module = humaneval if suite == "humaneval" else mbpp
    chat = uses_chat(backend.tokenizer, spec.chat)
    n = spec.code_samples
    prompts = [module.make_prompt(p, backend.tokenizer, chat) for p in problems]
    outputs = backend.generate(prompts, max_new_tokens=spec.max_new_tokens,
                               stop=() if chat else module.STOP,
                               temperature=spec.code_temperature if n > 1 else 0.0, n=n,
                               seed=spec.seed, desc=f"{suite} generate")
    programs, owners = [], []
    for i, (problem, outs) in enumerate(zip(problems, outputs)):
        for text in outs:
            programs.append(module.program(problem, module.to_completion(problem, text, chat)))
            owners.append(i)
    passed = humaneval.check_programs(programs, desc=f"{suite} exec")
    correct = np.zeros(len(problems))
    for owner, ok in zip(owners, passed):
        correct[owner] += ok
    result = EvalResult()
    ids = [p.get("task_id", p.get("id")) for p in problems]
    _summary(result, f"{suite}_pass1", [humaneval.pass_at_k(n, int(c), 1) for c in correct], ids)
    for k in (10, 100):
        if k <= n:
            _summary(result, f"{suite}_pass{k}", [humaneval.pass_at_k(n, int(c), k)
                                                  for c in correct], ids)
    for i in range(min(N_SAMPLES_KEPT, len(problems))):
        result.samples.append({"suite": suite, "id": ids[i], "prompt": prompts[i],
                               "completion": outputs[i][0], "correct": bool(passed[i * n])})
    return result


def run_gsm8k(backend, spec: EvalSpec, problems: list[dict]) -> EvalResult:
    chat = uses_chat(backend.tokenizer, spec.chat)
    prompts = [gsm8k.make_prompt(p, backend.tokenizer, chat) for p in problems]
    outputs = backend.generate(prompts, max_new_tokens=spec.max_new_tokens,
                               stop=() if chat else gsm8k.STOP, seed=spec.seed,
                               desc="gsm8k generate")
    strict, flexible = [], []
    for problem, (text,) in zip(problems, outputs):
        strict.append(float(gsm8k.same_number(gsm8k.extract_strict(text), problem["short_answer"])))
        flexible.append(float(gsm8k.same_number(gsm8k.extract_flexible(text),
                                                problem["short_answer"])))
    result = EvalResult()
    ids = [p["id"] for p in problems]
    _summary(result, "gsm8k_strict", strict, ids)
    _summary(result, "gsm8k_flexible", flexible, ids)
    for i in range(min(N_SAMPLES_KEPT, len(problems))):
        result.samples.append({"suite": "gsm8k", "id": ids[i], "prompt": prompts[i][-500:],
                               "completion": outputs[i][0], "correct": bool(strict[i])})
    return result


def run_mc(suite: str, backend, spec: EvalSpec, items) -> EvalResult:
    lls = choice_scores(backend, items, desc=suite)
    return score_items(suite, items, lls, headline=MC_HEADLINE[suite])


def run_diversity(backend, spec: EvalSpec, problems: list[dict]) -> EvalResult:
    chat = uses_chat(backend.tokenizer, spec.chat)
    prompts = [humaneval.make_prompt(p, backend.tokenizer, chat) for p in problems]
    outputs = backend.generate(prompts, max_new_tokens=spec.max_new_tokens,
                               stop=() if chat else humaneval.STOP,
                               temperature=diversity.TEMPERATURE, n=diversity.SAMPLES,
                               seed=spec.seed, desc="diversity generate")
    result = EvalResult()
    ids = [p["task_id"] for p in problems]
    _summary(result, "diversity_unique", [diversity.unique_fraction(o) for o in outputs], ids)
    for n in range(1, 5):
        _summary(result, f"diversity_distinct_{n}",
                 [diversity.distinct_n(o, n) for o in outputs], ids)
    return result


def run_general_and_drift(backend, spec: EvalSpec, blocks, drift_ref) -> EvalResult:
    """``general_loss`` and ``drift`` from one forward pass over their shared blocks."""
    from lfl_ray.eval.loss import scan_blocks

    model = _hf(backend, "general_loss")
    losses, kls = scan_blocks(model, blocks, batch_size=spec.batch_size, reference=drift_ref,
                              desc="general_loss+drift")
    result = EvalResult()
    _summary(result, "general_loss", losses, blocks.doc_ids)
    result.metrics["general_ppl"] = math.exp(result.metrics["general_loss"])
    _summary(result, "drift_kl", kls, blocks.doc_ids)
    return result


LOSS_METRICS = ("heldout_loss", "general_loss", "drift_kl")
"""The per-block metrics the loss suites record (``drift`` records ``drift_kl``)."""


def join_loss_shards(parts: list[EvalResult]) -> EvalResult:
    """One result from the loss-suite results of every rank's contiguous shard (in rank
    order): per-block values concatenated, then mean, clustered SE and perplexity
    recomputed over all blocks, as if one rank had scored them."""
    result = EvalResult()
    for metric in LOSS_METRICS:
        if not any(metric in part.items for part in parts):
            continue
        values = [v for part in parts for v in part.items.get(metric, [])]
        groups = [g for part in parts for g in part.groups.get(metric, [])]
        _summary(result, metric, values, groups)
        if metric.endswith("_loss"):
            result.metrics[metric.replace("_loss", "_ppl")] = math.exp(result.metrics[metric])
    return result


def run_suite(suite: str, backend, spec: EvalSpec, items, *, drift_ref=None) -> EvalResult:
    """Evaluate one suite on ``items`` (from ``load_items``) through ``backend``."""
    if suite in ("heldout_loss", "general_loss", "drift"):
        return run_loss(suite, backend, spec, items, drift_ref)
    if suite in ("humaneval", "mbpp"):
        return run_code(suite, backend, spec, items)
    if suite == "gsm8k":
        return run_gsm8k(backend, spec, items)
    if suite == "diversity":
        return run_diversity(backend, spec, items)
    if suite in MC_SUITES:
        return run_mc(suite, backend, spec, items)
    if suite.startswith(LM_EVAL_PREFIX):
        from lfl_ray.eval import harness_suite

        return harness_suite.run(suite, backend, spec, items)
    raise ConfigError("suite", suite, "unknown suite")


def add_mc_mean(result: EvalResult) -> None:
    """The paper's forgetting score: mean headline accuracy of the three MC tasks."""
    names = [f"{s}_{MC_HEADLINE[s]}" for s in MC_SUITES]
    if all(n in result.metrics for n in names):
        result.metrics["mc_mean"] = float(np.mean([result.metrics[n] for n in names]))
        result.metrics["mc_mean_se"] = float(
            math.sqrt(sum(result.metrics[f"{n}_se"] ** 2 for n in names)) / len(names))
