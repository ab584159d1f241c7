import dataclasses
import pickle

import pytest

from lfl_ray.data import REGIMES, DataSpec
from lfl_ray.errors import ConfigError


def test_regimes_are_the_five_of_the_study():
    assert tuple(REGIMES) == ("code_ift", "math_ift", "code_cpt", "math_cpt", "general")


def test_spec_is_frozen_picklable_and_validates():
    spec = DataSpec("code_cpt", max_train_blocks=10).validate()
    assert pickle.loads(pickle.dumps(spec)) == spec
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.seq_len = 8


def test_every_field_has_a_docstring():
    import inspect

    source = inspect.getsource(DataSpec)
    for f in dataclasses.fields(DataSpec):
        after = source.split(f"    {f.name}:", 1)[1].split("\n", 2)[1]
        assert after.strip().startswith('"""'), f.name


@pytest.mark.parametrize("kwargs, field", [
    (dict(regime="poetry"), "regime"),
    (dict(regime="code_ift", source="web"), "source"),
    (dict(regime="code_ift", seq_len=8), "seq_len"),
    (dict(regime="code_ift", seq_len=0), "seq_len"),
    (dict(regime="code_ift", seed=-1), "seed"),
    (dict(regime="code_ift", max_train_blocks=0), "max_train_blocks"),
    (dict(regime="code_ift", heldout_blocks=0), "heldout_blocks"),
    (dict(regime="code_ift", hub_dataset="some/thing"), "hub_dataset"),
    (dict(regime="code_ift", pack="yes"), "pack"),
])
def test_bad_fields_name_themselves(kwargs, field):
    with pytest.raises(ConfigError) as info:
        DataSpec(**kwargs).validate()
    assert info.value.field == field


def test_unknown_regime_lists_the_known_ones():
    with pytest.raises(ConfigError) as info:
        DataSpec("poetry").validate()
    for regime in REGIMES:
        assert regime in str(info.value)
