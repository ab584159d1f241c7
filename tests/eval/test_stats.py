"""Standard errors: plain, clustered and paired, on examples worked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lfl_ray.eval import EvalResult, paired_difference
from lfl_ray.eval.stats import bootstrap_se, mean_se, paired_se


def test_paired_se_on_a_constructed_example():
    a, b = [1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 1.0, 1.0]
    # differences 1, 2, 2, 3: mean 2, sample sd sqrt(2/3), se sqrt(2/3)/2
    mean, se = paired_se(a, b)
    assert mean == 2.0 and se == pytest.approx(math.sqrt(2 / 3) / 2)
    # Clustered by document (x: items 0,1; y: items 2,3): sums 3 and 5 around 2*2 each,
    # sqrt(G/(G-1) * ((3-4)^2 + (5-4)^2)) / N = sqrt(2 * 2) / 4 = 0.5
    mean, se = paired_se(a, b, ["x", "x", "y", "y"])
    assert mean == 2.0 and se == pytest.approx(0.5)
    # Pairing removes the shared item difficulty: the unpaired SE is larger.
    unpaired = math.hypot(mean_se(a)[1], mean_se(b)[1])
    assert unpaired > 1.5 * paired_se(a, b)[1]


def test_bootstrap_agrees_with_the_closed_form():
    rng = np.random.default_rng(1)
    values = rng.normal(size=300) + np.repeat(rng.normal(size=60), 5)
    groups = [str(i // 5) for i in range(300)]
    closed = mean_se(values, groups)[1]
    assert bootstrap_se(values, groups, n_boot=4000, seed=0) == pytest.approx(closed, rel=0.1)
    assert mean_se(values)[1] < 0.8 * closed  # ignoring clusters understates the SE


def test_paired_difference_on_results_and_json_round_trip():
    base = EvalResult(metrics={"m": 0.5}, items={"m": [0.0, 1.0, 0.0, 1.0]},
                      groups={"m": ["a", "a", "b", "b"]})
    tuned = EvalResult(metrics={"m": 0.75}, items={"m": [1.0, 1.0, 0.0, 1.0]},
                       groups={"m": ["a", "a", "b", "b"]})
    tuned = EvalResult.from_json(tuned.to_json())
    delta, se = paired_difference(tuned, base, "m")
    assert delta == 0.25
    assert se == pytest.approx(math.sqrt(2 * ((1 - 0.5) ** 2 + (0 - 0.5) ** 2)) / 4)
    with pytest.raises(ValueError, match="different items"):
        paired_difference(tuned, EvalResult(items={"m": [0.0]}), "m")


def test_mc_mean_combines_the_three_tasks():
    def result(shift):
        r = EvalResult()
        for name in ("hellaswag_acc_norm", "arc_challenge_acc_norm", "winogrande_acc"):
            r.items[name] = [shift, 1.0, 0.0, shift]
        return r

    delta, se = paired_difference(result(1.0), result(0.0), "mc_mean")
    one_delta, one_se = paired_se([1, 1, 0, 1], [0, 1, 0, 0])
    assert delta == pytest.approx(one_delta)
    assert se == pytest.approx(math.sqrt(3 * one_se ** 2) / 3)


def test_metric_difference_is_paired_where_it_can_be_and_plain_where_not():
    from lfl_ray.eval.milestone import metric_difference

    base = EvalResult(metrics={"m": 0.5, "eval_loss": 2.0}, items={"m": [0.0, 1.0, 0.0, 1.0]})
    tuned = EvalResult(metrics={"m": 0.75, "eval_loss": 1.5}, items={"m": [1.0, 1.0, 0.0, 1.0]})
    assert metric_difference(tuned, base, "m") == paired_difference(tuned, base, "m")
    assert metric_difference(tuned, base, "eval_loss") == (-0.5, None)  # no per-item values: no SE
