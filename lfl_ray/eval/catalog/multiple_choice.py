"""HellaSwag, ARC-Challenge and WinoGrande, scored as lm-eval scores them, and ``mc_mean``.

Each is the log-likelihood of every option after the item's context; the headline metric
is length-normalized accuracy for HellaSwag and ARC (``acc_norm``) and accuracy for
WinoGrande. ``mc_mean``, the paper's forgetting score, averages exactly these three.
"""

from __future__ import annotations

from lfl_ray.eval import arc, hellaswag, winogrande
from lfl_ray.eval.items import subset_indices
from lfl_ray.eval.multiple_choice import choice_scores, score_items
from lfl_ray.eval.registry import Aggregate, Suite, register_aggregate, register_suite

HEADLINE = {"hellaswag": "acc_norm", "arc_challenge": "acc_norm", "winogrande": "acc"}
MODULES = {"hellaswag": hellaswag, "arc_challenge": arc, "winogrande": winogrande}


def _loader(suite: str):
    def load(spec, **_):
        everything = MODULES[suite].load_items()
        return [everything[i] for i in subset_indices(suite, spec, len(everything))]
    return load


def _runner(suite: str):
    def run(backend, spec, items, reference=None):
        return score_items(suite, items, choice_scores(backend, items, desc=suite),
                           headline=HEADLINE[suite])
    return run


for _name, _doc in (("hellaswag", "HellaSwag sentence completion (acc_norm)"),
                    ("arc_challenge", "ARC-Challenge science questions (acc_norm)"),
                    ("winogrande", "WinoGrande pronoun resolution (acc)")):
    register_suite(Suite(name=_name, kind="choice", load=_loader(_name), run=_runner(_name),
                         scores={f"{_name}_{HEADLINE[_name]}": True}, doc=_doc))

register_aggregate(Aggregate(name="mc_mean", parts=dict(HEADLINE), higher_is_better=True,
                             doc="mean headline accuracy of HellaSwag, ARC-Challenge, WinoGrande"))
