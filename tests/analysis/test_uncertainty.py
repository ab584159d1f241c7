import math

import numpy as np
import pytest

from lfl_ray.analysis.uncertainty import (Estimate, clustered_se, mean_se, paired_difference,
                                          unpaired_difference)


def test_clustered_se_without_groups_is_the_plain_se():
    values = np.random.default_rng(0).normal(size=50)
    assert clustered_se(values) == pytest.approx(values.std(ddof=1) / math.sqrt(50))
    assert clustered_se(values, list(range(50))) == pytest.approx(clustered_se(values))


def test_clustered_se_grows_when_items_of_a_group_move_together():
    rng = np.random.default_rng(1)
    shared = np.repeat(rng.normal(size=10), 5)  # 10 documents of 5 items each
    values = shared + 0.1 * rng.normal(size=50)
    groups = np.repeat(np.arange(10), 5)
    assert clustered_se(values, groups) > 1.8 * clustered_se(values)


def test_paired_beats_unpaired_when_items_share_difficulty():
    rng = np.random.default_rng(2)
    difficulty = rng.normal(0, 1, 100)
    a = difficulty + 0.10 + rng.normal(0, 0.05, 100)
    b = difficulty + rng.normal(0, 0.05, 100)
    paired = paired_difference(a, b)
    unpaired = unpaired_difference(Estimate(*mean_se(a)), Estimate(*mean_se(b)))
    assert paired.value == pytest.approx(unpaired.value)
    assert paired.distinguishable() and not unpaired.distinguishable()
    assert paired.se < unpaired.se / 5
    with pytest.raises(ValueError):
        paired_difference(a, b[:-1])


def test_estimate_signs_and_text():
    assert Estimate(0.3, 0.1).sign() == 1
    assert Estimate(-0.3, 0.1).sign() == -1
    assert Estimate(0.15, 0.1).sign() == 0
    assert Estimate(0.3, float("nan")).sign() == 0
    assert Estimate(0.3, 0.1).text() == "+0.300 ± 0.100"
    assert mean_se([1.0]) == (1.0, pytest.approx(float("nan"), nan_ok=True))
