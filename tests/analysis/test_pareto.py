import numpy as np
import pytest

from lfl_ray.analysis.pareto import (best_within_budget, front, fronts_by, group_key,
                                     non_dominated, pareto_markdown, points)
from lfl_ray.analysis.runs import load_sweep
from lfl_ray.errors import ConfigError


def brute_force(learning, forgetting):
    n = len(learning)
    keep = []
    for i in range(n):
        if np.isnan(learning[i]) or np.isnan(forgetting[i]):
            keep.append(False)
            continue
        dominated = any(
            learning[j] >= learning[i] and forgetting[j] <= forgetting[i]
            and (learning[j] > learning[i] or forgetting[j] < forgetting[i])
            for j in range(n) if j != i and not np.isnan(learning[j]) and not np.isnan(forgetting[j]))
        keep.append(not dominated)
    return np.array(keep, dtype=bool)


@pytest.mark.parametrize("seed", range(40))
def test_front_equals_brute_force_with_ties_and_duplicates(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 60))
    # Few distinct values: many ties in each coordinate and exact duplicate points.
    learning = rng.integers(0, 6, n).astype(float)
    forgetting = rng.integers(0, 6, n).astype(float)
    if seed % 4 == 0:
        learning[rng.integers(0, n)] = np.nan
    if seed % 5 == 0:
        idx = rng.integers(0, n, 3)
        learning[idx], forgetting[idx] = learning[idx[0]], forgetting[idx[0]]
    assert np.array_equal(non_dominated(learning, forgetting), brute_force(learning, forgetting))


def test_front_on_continuous_points_and_edge_cases():
    rng = np.random.default_rng(7)
    learning, forgetting = rng.normal(size=300), rng.normal(size=300)
    assert np.array_equal(non_dominated(learning, forgetting), brute_force(learning, forgetting))
    assert non_dominated([], []).size == 0
    assert non_dominated([1.0, 1.0], [2.0, 2.0]).all()  # duplicates do not dominate each other
    assert list(non_dominated([1.0, 1.0], [2.0, 3.0])) == [True, False]
    with pytest.raises(ValueError):
        non_dominated([1.0], [1.0, 2.0])


def test_fronts_of_a_sweep(store):
    sweep = load_sweep("paper", store[0])
    pts = points(sweep.usable)
    overall = front(pts)
    ids = {(p.trial.trial_id, p.tokens) for p in overall}
    assert ("full-a", 4000) in ids and ("lora-r64-all", 4000) in ids
    assert ("full-b", 4000) not in ids  # learns less and forgets more than full-a
    assert [p.forgetting for p in overall] == sorted(p.forgetting for p in overall)
    by_rank = fronts_by(pts, "rank")
    assert set(by_rank) == {"full", "full+wd", "lora r=16", "lora r=64"}
    assert all(p.trial.rank == 16 for p in by_rank["lora r=16"])
    by_targets = fronts_by(pts, "targets")
    assert {"lora all", "lora attention"} <= set(by_targets)
    pick = best_within_budget(pts, 0.095)
    assert (pick.trial.trial_id, pick.tokens) == ("lora-r64-all", 4000)
    assert best_within_budget(pts, -1.0) is None
    text = pareto_markdown(sweep)
    assert "| lora-r64-all lr=1e-04 | lora-r64-all | 4,000 |" in text
    with pytest.raises(ConfigError):
        group_key("optimizer")
