"""Output diversity on HumanEval prompts: unique samples and distinct n-grams at T=1.

The paper reports that full finetuning narrows generations more than LoRA does.
"""

from __future__ import annotations

from lfl_ray.eval import diversity, humaneval
from lfl_ray.eval.items import subset_indices
from lfl_ray.eval.prompts import uses_chat
from lfl_ray.eval.registry import Suite, register_suite
from lfl_ray.eval.result import EvalResult
from lfl_ray.eval.scoring import summarize


def load(spec, **_):
    everything = humaneval.load_problems()
    return [everything[i] for i in subset_indices("diversity", spec, len(everything))]


def run(backend, spec, problems, reference=None) -> EvalResult:
    chat = uses_chat(backend.tokenizer, spec.chat)
    prompts = [humaneval.make_prompt(p, backend.tokenizer, chat) for p in problems]
    outputs = backend.generate(prompts, max_new_tokens=spec.max_new_tokens,
                               stop=() if chat else humaneval.STOP,
                               temperature=diversity.TEMPERATURE, n=diversity.SAMPLES,
                               seed=spec.seed, desc="diversity generate")
    result = EvalResult()
    ids = [p["task_id"] for p in problems]
    summarize(result, "diversity_unique", [diversity.unique_fraction(o) for o in outputs], ids)
    for n in range(1, 5):
        summarize(result, f"diversity_distinct_{n}", [diversity.distinct_n(o, n) for o in outputs], ids)
    return result


register_suite(Suite(name="diversity", kind="generation", load=load, run=run,
                     scores={"diversity_unique": True},
                     doc="fraction of unique samples and distinct-n of HumanEval generations"))
