"""HumanEval and MBPP: generate a function body, run it against the tests in the sandbox.

pass@1 is greedy with ``code_samples: 1``; with n > 1 samples it is the unbiased estimate
(Chen et al. 2021), with pass@10/@100 where n allows. Programs run in
``lfl_ray.eval.sandbox``: model-generated code is hostile.
"""

from __future__ import annotations

import numpy as np

from lfl_ray.eval import humaneval, mbpp
from lfl_ray.eval.items import subset_indices
from lfl_ray.eval.prompts import uses_chat
from lfl_ray.eval.registry import Suite, register_suite
from lfl_ray.eval.result import EvalResult
from lfl_ray.eval.scoring import N_SAMPLES_KEPT, summarize

MODULES = {"humaneval": humaneval, "mbpp": mbpp}


def _loader(suite: str):
    def load(spec, **_):
        everything = MODULES[suite].load_problems()
        return [everything[i] for i in subset_indices(suite, spec, len(everything))]
    return load


def _runner(suite: str):
    module = MODULES[suite]

    def run(backend, spec, problems, reference=None) -> EvalResult:
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
        summarize(result, f"{suite}_pass1", [humaneval.pass_at_k(n, int(c), 1) for c in correct], ids)
        for k in (10, 100):
            if k <= n:
                summarize(result, f"{suite}_pass{k}",
                          [humaneval.pass_at_k(n, int(c), k) for c in correct], ids)
        for i in range(min(N_SAMPLES_KEPT, len(problems))):
            result.samples.append({"suite": suite, "id": ids[i], "prompt": prompts[i],
                                   "completion": outputs[i][0], "correct": bool(passed[i * n])})
        return result
    return run


for _name, _doc in (("humaneval", "HumanEval pass@1 (164 Python problems)"),
                    ("mbpp", "MBPP pass@1 (500 Python problems, sanitized test split)")):
    register_suite(Suite(name=_name, kind="generation", load=_loader(_name), run=_runner(_name),
                         scores={f"{_name}_pass1": True}, doc=_doc))
