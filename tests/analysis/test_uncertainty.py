import math

import pytest

from lfl_ray.analysis.uncertainty import Estimate, mean_se, unpaired_difference


def test_estimate_signs_and_text():
    assert Estimate(0.3, 0.1).sign() == 1
    assert Estimate(-0.3, 0.1).sign() == -1
    assert Estimate(0.15, 0.1).sign() == 0
    assert Estimate(0.3, float("nan")).sign() == 0
    assert Estimate(0.3, 0.1).text() == "+0.300 ± 0.100"
    assert mean_se([1.0]) == (1.0, pytest.approx(float("nan"), nan_ok=True))


def test_mean_se_and_unpaired_difference():
    mean, se = mean_se([1.0, 2.0, 3.0, float("nan")])
    assert mean == pytest.approx(2.0) and se == pytest.approx(1.0 / math.sqrt(3))
    diff = unpaired_difference(Estimate(1.0, 0.3), Estimate(0.5, 0.4))
    assert diff.value == pytest.approx(0.5) and diff.se == pytest.approx(0.5)
    assert not diff.distinguishable() and diff.how == "unpaired"


def test_one_verdict_rule_for_findings_and_recommendations():
    from lfl_ray.analysis import findings, recommend
    from lfl_ray.analysis.uncertainty import Verdict, verdict_of

    cases = {(): Verdict.UNTESTED, (0, 0): Verdict.NOISE, (1, 1): Verdict.AGREES, (1, 0): Verdict.PARTLY,
             (1, -1): Verdict.PARTLY, (-1, -1): Verdict.DISAGREES, (0, -1): Verdict.DISAGREES}
    for signs, expected in cases.items():
        assert verdict_of(signs) == expected, signs
        assert verdict_of([-s for s in signs], expected=-1) == expected, signs  # the paper predicts "less"
    # Each module words the same verdict its own way.
    assert findings.combine([0, -1]) == findings.DISAGREES and recommend.combine([0, -1]) == recommend.DISAGREES
    assert (findings.combine([0]), recommend.combine([0])) == ("not distinguishable", "not distinguishable here")
