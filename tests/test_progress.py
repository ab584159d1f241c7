"""Progress of long loops: bars on a terminal, plain lines in a log, nothing when off."""

from __future__ import annotations

import io
import os

import pytest

from lfl_ray import progress as progress_module
from lfl_ray.progress import Lines, progress, progress_mode


@pytest.mark.parametrize("env, tty, mode", [("", True, "bars"), ("", False, "lines"), ("off", True, "off"),
                                            ("LINES", True, "lines"), ("bars", False, "bars"),
                                            ("nonsense", False, "lines")])
def test_the_mode_follows_the_terminal_unless_told(monkeypatch, env, tty, mode):
    monkeypatch.setenv("LFL_RAY_PROGRESS", env)
    monkeypatch.setattr("sys.stderr.isatty", lambda: tty)
    assert progress_mode() == mode


def test_lines_print_now_and_then_without_carriage_returns(monkeypatch):
    clock = iter(float(t) for t in range(0, 1000, 10))  # each call to the clock is 10 s later
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    items = list(Lines(range(7), desc="code_ift train", unit="rec", every=30.0, file=out))
    assert items == list(range(7))
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and 2 <= len(lines) <= 3
    assert lines[0].startswith("code_ift train: 3/7 rec in 30 s") and lines[-1].endswith("done")


def test_a_short_loop_prints_nothing_and_off_is_silent(monkeypatch, capsys):
    monkeypatch.setenv("LFL_RAY_PROGRESS", "lines")
    assert list(progress(range(3), desc="quick")) == [0, 1, 2]
    monkeypatch.setenv("LFL_RAY_PROGRESS", "off")
    with progress(total=5, desc="heldout_loss") as bar:
        bar.update(5)
    assert capsys.readouterr().err == ""


def test_bars_are_tqdm(monkeypatch):
    from tqdm.auto import tqdm

    monkeypatch.setenv("LFL_RAY_PROGRESS", "bars")
    bar = progress(range(2), desc="x")
    assert isinstance(bar, tqdm)
    bar.close()


def test_library_bars_follow_the_mode(monkeypatch):
    from transformers.utils import logging as transformers_logging

    from lfl_ray.progress import quiet_library_bars

    transformers_logging.enable_progress_bar()  # an earlier test in this process may have quieted them
    monkeypatch.setenv("LFL_RAY_PROGRESS", "bars")
    quiet_library_bars()  # bars mode leaves the libraries' own bars as they are
    assert transformers_logging.is_progress_bar_enabled()
    monkeypatch.setenv("LFL_RAY_PROGRESS", "lines")
    monkeypatch.delenv("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", raising=False)
    try:
        quiet_library_bars()
        assert not transformers_logging.is_progress_bar_enabled()
        assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"
    finally:
        transformers_logging.enable_progress_bar()
