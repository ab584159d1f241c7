"""The regime registry: every shipped regime is complete, and a new one is one registration."""

from __future__ import annotations

from dataclasses import replace

import pytest

from lfl_ray.cli import main
from lfl_ray.data import REGIMES, DataSpec, Regime, load_regime, register_regime
from lfl_ray.data.records import Example
from lfl_ray.data.regimes import KINDS, training_regimes
from lfl_ray.errors import ConfigError

PAIRS = [(f"What is {a} plus {a}?", f"{a} plus {a} is {2 * a}.") for a in range(12)]


def _toy_examples(spec, log):
    return [Example(f"toy/{i}", "toy", q, a) for i, (q, a) in enumerate(PAIRS)], {"notes": ["in memory"]}


TOY = Regime("toy_ift", "ift", "toy instruction tuning: twelve in-memory sums", offline=_toy_examples)


@pytest.fixture
def cleanup():
    """Whatever a test registers as ``toy_ift`` is removed again after it."""
    yield
    REGIMES.pop(TOY.name, None)


@pytest.fixture
def toy(cleanup):
    """TOY registered for one test."""
    return register_regime(TOY)


def test_the_study_regimes_are_registered_in_order():
    assert tuple(REGIMES) == ("code_ift", "math_ift", "code_cpt", "math_cpt", "general")
    assert training_regimes() == ("code_ift", "math_ift", "code_cpt", "math_cpt")


@pytest.mark.parametrize("name", list(REGIMES))
def test_every_registered_regime_is_complete(name):
    """Walks the registry: each value validates, builds from both sources, and names a learning
    eval that the eval package knows (the metric is one its suite produces)."""
    from lfl_ray.eval.registry import get_suite, suite_names

    regime = REGIMES[name].validate()
    assert regime.name == name and regime.kind in KINDS and regime.description
    assert regime.sources == ("offline", "hub")
    if regime.trainable:
        assert regime.learning_suite in suite_names()
        assert regime.learning_metric in get_suite(regime.learning_suite).scores
    else:
        assert regime.learning_suite is None


def test_a_toy_regime_is_one_registration(cleanup, capsys):
    from lfl_ray.sweep.study import load_study

    sweep = load_study("code_ift", preset="smoke").spec()
    with pytest.raises(ConfigError) as err:
        replace(sweep, regime="toy_ift").validate()
    assert err.value.field == "regime"
    with pytest.raises(ConfigError):
        DataSpec("toy_ift").validate()

    register_regime(TOY)  # the one call

    assert replace(sweep, regime="toy_ift").validate().regime == "toy_ift"
    assert main(["data", "stats", "toy_ift", "--seq-len", "128", "--heldout-blocks", "2",
                 "--max-train-blocks", "2"]) == 0
    out = capsys.readouterr().out
    assert "toy_ift (offline, ift, seq_len 128" in out and "note: in memory" in out
    assert "sources {'toy':" in out

    data = load_regime(DataSpec("toy_ift", seq_len=128, heldout_blocks=2, max_train_blocks=2),
                       log=lambda *_: None)
    assert data.stats["kind"] == "ift" and len(data.heldout) == 2
    assert not set(data.train.doc_ids) & set(data.heldout.doc_ids)
    assert "plus" in data.stats["sample"]["loss_text"]


def test_data_regimes_lists_the_registry(toy, capsys):
    assert main(["data", "regimes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(REGIMES)
    assert "toy_ift" in lines[-1] and "sources offline" in lines[-1] and "twelve in-memory sums" in lines[-1]


def test_a_source_the_regime_lacks_is_refused(toy):
    with pytest.raises(ConfigError) as err:
        DataSpec("toy_ift", source="hub").validate()
    assert err.value.field == "source" and "has no hub source" in str(err.value)


def test_registering_a_name_twice_is_refused_unless_replaced(toy):
    with pytest.raises(ConfigError) as err:
        register_regime(TOY)
    assert err.value.field == "regime.name"
    other = replace(TOY, description="another toy")
    assert register_regime(other, replace=True) is REGIMES["toy_ift"] is other


@pytest.mark.parametrize("change, field", [
    (dict(name="Toy IFT"), "regime.name"), (dict(kind="sft"), "regime.kind"),
    (dict(description=""), "regime.description"), (dict(offline=None), "regime.offline"),
    (dict(hub=("org/data",)), "regime.hub"), (dict(learning_suite="humaneval"), "regime.learning_metric"),
    (dict(trainable="yes"), "regime.trainable"),
])
def test_a_bad_regime_names_its_field(cleanup, change, field):
    with pytest.raises(ConfigError) as err:
        register_regime(replace(TOY, **change))
    assert err.value.field == field
    assert "toy_ift" not in REGIMES
