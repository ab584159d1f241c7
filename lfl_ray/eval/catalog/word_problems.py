"""GSM8K: greedy chain-of-thought answers, scored strict (``#### n``) and flexible (last number)."""

from __future__ import annotations

from lfl_ray.eval import gsm8k
from lfl_ray.eval.items import subset_indices
from lfl_ray.eval.prompts import uses_chat
from lfl_ray.eval.registry import Suite, register_suite
from lfl_ray.eval.result import EvalResult
from lfl_ray.eval.scoring import N_SAMPLES_KEPT, summarize


def load(spec, **_):
    everything = gsm8k.load_problems()
    return [everything[i] for i in subset_indices("gsm8k", spec, len(everything))]


def run(backend, spec, problems, reference=None) -> EvalResult:
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
    summarize(result, "gsm8k_strict", strict, ids)
    summarize(result, "gsm8k_flexible", flexible, ids)
    for i in range(min(N_SAMPLES_KEPT, len(problems))):
        result.samples.append({"suite": "gsm8k", "id": ids[i], "prompt": prompts[i][-500:],
                               "completion": outputs[i][0], "correct": bool(strict[i])})
    return result


register_suite(Suite(name="gsm8k", kind="generation", load=load, run=run,
                     scores={"gsm8k_strict": True, "gsm8k_flexible": True},
                     doc="GSM8K exact match of the final number (strict and flexible)"))
