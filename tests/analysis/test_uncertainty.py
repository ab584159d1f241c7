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
