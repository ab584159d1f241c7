"""Progress of long loops (data builds, evals) that reads well in a terminal and in a log.

In a terminal a tqdm bar redraws itself in place. Written to a file (``nohup``, a Ray
worker's log, ``ray job logs``) every redraw is kept, carriage returns and all, so there
``progress`` prints plain lines instead: one every ``LINE_EVERY_S`` seconds while the loop
runs and one when it ends, if it ran that long. ``LFL_RAY_PROGRESS`` picks: ``bars``,
``lines`` or ``off`` (default: bars when stderr is a terminal, else lines).
"""

from __future__ import annotations

import os
import sys
import time

MODES = ("bars", "lines", "off")
ENV = "LFL_RAY_PROGRESS"
LINE_EVERY_S = 30.0
"""Seconds between two lines of one loop (and the least a loop runs to print its last line)."""


def progress_mode() -> str:
    """``LFL_RAY_PROGRESS`` when it is one of ``MODES``, else bars on a terminal and lines elsewhere."""
    mode = os.environ.get(ENV, "").strip().lower()
    if mode in MODES:
        return mode
    return "bars" if sys.stderr.isatty() else "lines"


class Lines:
    """A tqdm stand-in that prints a plain line now and then (``update``, iteration,
    ``with``). ``desc`` empty: silent, as tqdm's ``disable``."""

    def __init__(self, iterable=None, *, desc: str = "", total: int | None = None, unit: str = "it",
                 every: float = LINE_EVERY_S, file=None, **_ignored):
        self.iterable, self.desc, self.unit, self.every = iterable, desc, unit, every
        self.total = total if total is not None else (len(iterable) if hasattr(iterable, "__len__") else None)
        self.n, self.file = 0, file
        self.start = self.last = time.monotonic()

    def _line(self, now: float, final: bool = False) -> None:
        elapsed = now - self.start
        of = f"/{self.total}" if self.total is not None else ""
        per_s = self.n / elapsed if elapsed > 0 and self.n else 0.0
        rate = (f", {per_s:.1f} {self.unit}/s" if per_s >= 1 else
                f", {elapsed / self.n:.0f} s/{self.unit}" if per_s else "")
        state = "done" if final else "..."
        print(f"{self.desc}: {self.n}{of} {self.unit} in {elapsed:.0f} s{rate} {state}",
              file=self.file or sys.stderr, flush=True)
        self.last = now

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if self.desc and now - self.last >= self.every:
            self._line(now)

    def close(self) -> None:
        now = time.monotonic()
        if self.desc and now - self.start >= self.every:
            self._line(now, final=True)
        self.desc = ""  # once

    def __iter__(self):
        try:
            for item in self.iterable:
                yield item
                self.update()
        finally:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def progress(iterable=None, *, desc: str = "", total: int | None = None, unit: str = "it",
             leave: bool = False, disable: bool = False):
    """A progress bar (tqdm) on a terminal, plain lines in a log, nothing when ``off`` or
    ``disable``; used like ``tqdm(iterable, desc=...)`` or ``with progress(total=N) as bar``."""
    mode = "off" if disable or not desc else progress_mode()
    if mode == "bars":
        from tqdm.auto import tqdm

        return tqdm(iterable, desc=desc, total=total, unit=unit, leave=leave)
    return Lines(iterable, desc=desc if mode == "lines" else "", total=total, unit=unit)


def quiet_library_bars() -> None:
    """Outside ``bars`` mode, turn off the bars that transformers, huggingface_hub and MLflow
    draw themselves ("Loading weights", "Writing model shards" at every full-FT checkpoint,
    "Downloading artifacts")."""
    if progress_mode() == "bars":
        return
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:
        return
    transformers_logging.disable_progress_bar()  # huggingface_hub's too
