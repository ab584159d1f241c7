"""``lm_eval:<task>``: any lm-evaluation-harness task, built on demand (``harness_suite``)."""

from __future__ import annotations

from lfl_ray.eval.registry import Suite, register_prefix

PREFIX = "lm_eval:"


def lm_eval_suite(name: str) -> Suite:
    from lfl_ray.eval import harness_suite

    harness_suite.task_of(name)  # a bare 'lm_eval:' is a ConfigError naming the format

    def load(spec, **_):
        return harness_suite.load_items(name, spec)

    def run(backend, spec, items, reference=None):
        return harness_suite.run(name, backend, spec, items)

    return Suite(name=name, kind="generation", load=load, run=run,
                 doc=f"lm-eval task {harness_suite.task_of(name)!r}")


register_prefix(PREFIX, lm_eval_suite)
