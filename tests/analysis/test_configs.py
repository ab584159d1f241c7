import statistics

import pytest

from lfl_ray.analysis.configs import best, common_tokens, compare, group_configs
from lfl_ray.analysis.runs import load_sweep


def test_seeds_of_one_setting_form_one_config_with_seed_spread(store):
    sweep = load_sweep("seeds", store[0])
    configs = group_configs(sweep.usable)
    assert sorted(len(c.trials) for c in configs) == [3, 3]
    full = next(c for c in configs if not c.is_lora)
    estimate = full.estimate("learning")
    assert estimate.value == pytest.approx(0.50)
    assert estimate.se == pytest.approx(statistics.stdev([0.50, 0.52, 0.48]) / 3**0.5)
    assert "seeds (n=3)" in estimate.how
    lora = next(c for c in configs if c.is_lora)
    diff, tokens = compare(sweep, lora, full, "learning")
    assert tokens == 2000 and diff.how == "seed spread"
    assert diff.value == pytest.approx(-0.20) and diff.sign() == -1


def test_single_seed_comparisons_are_paired_over_items(store):
    sweep = load_sweep("paper", store[0])
    configs = {c.first.trial_id: c for c in group_configs(sweep.usable)}
    diff, tokens = compare(sweep, configs["lora-r64-all"], configs["full-a"], "learning")
    assert tokens == 4000 and diff.how == "paired over 40 items"
    assert diff.value == pytest.approx(0.40 - 0.50)
    # The SE is the evaluator's paired one over the same items (clustered by document).
    from lfl_ray.analysis.runs import load_eval
    from lfl_ray.eval.stats import paired_se

    a, b = (load_eval(sweep, configs[k].first.run_id, 4000) for k in ("lora-r64-all", "full-a"))
    _, expected = paired_se(a["items"]["heldout_loss"], b["items"]["heldout_loss"],
                            a["groups"]["heldout_loss"])
    assert diff.se == pytest.approx(expected) and 0 < diff.se < 0.05
    stopped = configs["lora-r16-all-stopped"]
    assert common_tokens(stopped, configs["full-a"]) == 1000
    assert best(configs.values()).first.trial_id == "full-a"
