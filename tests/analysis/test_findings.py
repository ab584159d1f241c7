"""Matched learning, capacity, KL predictors and findings.json on synthetic sweeps with known answers."""

import json

import pytest

from lfl_ray.analysis import capacity, findings, kl_forgetting, matched
from lfl_ray.analysis.configs import group_configs
from lfl_ray.analysis.runs import load_sweep
from synthetic_sweep import FakeTrial, write_sweep


def linear_trials(full_slope: float, lora_slope: float, noise: float = 0.02) -> list[FakeTrial]:
    """Full FT and LoRA on straight learning-forgetting lines through the base model, with
    two LRs each and a drift_kl that ranks with forgetting."""
    trials = []
    for family, method, slope, lrs, reach in (("full", "full", full_slope, (1e-5, 3e-5), (0.3, 0.6)),
                                              ("lora-r16-all", "lora", lora_slope, (1e-4, 3e-4), (0.2, 0.4))):
        for lr, top in zip(lrs, reach):
            learn = [top * 0.25, top * 0.5, top]
            params = {"method": method, "lr": lr} | ({"rank": 16} if method == "lora" else {})
            trials.append(FakeTrial(f"{family}-{lr:g}", family, params, learn,
                                    [slope * x for x in learn], item_noise=noise,
                                    extra={"drift_kl": [slope * x for x in learn]}))
    return trials


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('findings')}/mlflow.db"
    write_sweep(uri, "apart", linear_trials(0.6, 0.2))
    write_sweep(uri, "overlap", linear_trials(0.3, 0.3, noise=0.3))
    return {name: load_sweep(name, uri) for name in ("apart", "overlap")}


def test_matched_learning_reads_both_curves_at_the_same_learning(sweeps):
    pooled = matched.matched_learning(sweeps["apart"], n_boot=200)[0]
    assert pooled.a == matched.POOLED_LORA and pooled.b == "full"
    top = pooled.levels[-1]
    assert top.learning == pytest.approx(0.4)  # the most LoRA reaches
    assert top.forgetting_a == pytest.approx(0.2 * 0.4)
    assert top.forgetting_b == pytest.approx(0.6 * 0.4)
    assert top.difference.value == pytest.approx(-0.16)
    # The headline: the difference -0.4x averaged over learning 0..0.4.
    head = pooled.headline
    assert head.learning == pytest.approx(0.4) and head.difference.value == pytest.approx(-0.08)
    assert 0 < head.difference.se < 0.02 and "paired bootstrap" in head.difference.how
    assert pooled.verdict_sign() == -1


def test_overlapping_curves_are_not_distinguishable(sweeps):
    pooled = matched.matched_learning(sweeps["overlap"], n_boot=200)[0]
    assert abs(pooled.headline.difference.value) < 0.01
    assert pooled.verdict_sign() == 0
    assert "not distinguishable" in [row[-1] for row in matched.rows([pooled])]


def test_capacity_counts_params_and_tokens_and_flags_far_from_capacity(sweeps):
    caps = capacity.sweep_capacity(sweeps["apart"])
    lora = next(c for c in caps if c.trial.is_lora)
    assert lora.trainable_params == 1000 and lora.params_from == "logged"
    assert lora.tokens == 4000
    assert lora.tokens_per_param == pytest.approx(4.0)
    assert lora.capacity_use == pytest.approx(2.0) and lora.state == capacity.AT
    # Computed from the config when not logged: tiny-llama r=4 on all targets has 9,344.
    assert capacity.lora_params("tiny-llama", 4, "all") == 9344
    assert capacity.lora_params("tiny-llama", 4, "q_proj+v_proj") == 1792
    assert capacity.lora_params("tiny-llama", 4, "nope") is None


def test_kl_predictor_ranks_drift_and_says_target_kl_is_not_tested(sweeps):
    predictors = kl_forgetting.kl_predictors(sweeps["apart"], n_boot=300)
    assert predictors["drift_kl"].rho.value == pytest.approx(1.0)
    assert not predictors["heldout_kl"].tested and "no trial logged" in predictors["heldout_kl"].reason


def test_findings_json_has_verdicts_and_renders(sweeps, tmp_path):
    out = {}
    for name, sweep in sweeps.items():
        configs = group_configs(sweep.usable)
        doc = findings.build(sweep, configs, matched=matched.matched_learning(sweep, n_boot=200),
                             capacities=capacity.sweep_capacity(sweep),
                             predictors=kl_forgetting.kl_predictors(sweep, n_boot=200))
        path = findings.write(doc, tmp_path / name) if (tmp_path / name).mkdir() is None else None
        out[name] = {f["id"]: f for f in json.loads(path.read_text())["findings"]}
    apart, overlap = out["apart"], out["overlap"]
    assert set(apart) == {"a", "b", "c", "d", "e", "capacity", "intruders", "kl_target", "kl_general"}
    assert all(f["verdict"] in findings.VERDICTS for f in apart.values())
    assert apart["a"]["verdict"] == "agrees" and apart["a"]["tokens"] == [4000]
    assert apart["b"]["verdict"] == "agrees" and apart["b"]["value"] == pytest.approx(-0.08)
    assert apart["b"]["se"] > 0 and apart["b"]["tokens"] == [1000, 2000, 4000]
    assert overlap["b"]["verdict"] == "not distinguishable"
    for fid in ("c", "d", "intruders", "kl_target"):
        assert apart[fid]["verdict"] == "not tested"
    assert apart["kl_general"]["verdict"] == "agrees"
    assert apart["e"]["verdict"] == "not tested"  # two LRs a family: no U can show
    text = findings.markdown(json.loads((tmp_path / "apart" / findings.FILE).read_text()))
    assert "| b | LoRA forgets less at matched learning | -0.08" in text


def lr_grid_trials(full: dict[float, float], lora: dict[float, float]) -> list[FakeTrial]:
    """Full FT and LoRA r=16 trials at the given {lr: final learning}, items tight enough that
    0.03 apart is beyond 2 paired SE and 0.003 apart is not."""
    trials = []
    for family, method, grid in (("full", "full", full), ("lora-r16-all", "lora", lora)):
        for lr, top in grid.items():
            params = {"method": method, "lr": lr} | ({"rank": 16} if method == "lora" else {})
            learn = [top * 0.5, top * 0.75, top]
            trials.append(FakeTrial(f"{family}-{lr:g}", family, params, learn, [0.1 * x for x in learn],
                                    item_noise=0.01))
    return trials


def test_lr_finding_reads_a_flat_topped_u_and_gives_the_ratio_as_a_range(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    # Full FT peaks at 1e-4; LoRA is flat over 1e-3..3e-3 and falls off on both sides.
    write_sweep(uri, "u", lr_grid_trials({3e-5: 0.17, 1e-4: 0.23, 3e-4: 0.20},
                                         {3e-4: 0.17, 1e-3: 0.203, 3e-3: 0.205, 1e-2: -0.03}))
    write_sweep(uri, "edge", lr_grid_trials({3e-5: 0.17, 1e-4: 0.23, 3e-4: 0.20},
                                            {3e-4: 0.10, 1e-3: 0.15, 3e-3: 0.20}))
    u = findings.finding_e(load_sweep("u", uri), group_configs(load_sweep("u", uri).usable))
    assert u.verdict == findings.AGREES, u.text
    assert u.numbers["lora"]["tied_lrs"] == [1e-3, 3e-3] and u.numbers["full"]["tied_lrs"] == [1e-4]
    assert u.numbers["ratio"] == pytest.approx(30.0) and u.numbers["ratio_range"] == pytest.approx([10.0, 30.0])
    assert "10x-30x" in u.text and "U-curve visible on both" in u.text
    edge = findings.finding_e(load_sweep("edge", uri), group_configs(load_sweep("edge", uri).usable))
    assert edge.verdict == findings.NOISE and "highest LR of the grid" in edge.text
