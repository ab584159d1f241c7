"""A sweep's training progress on the driver: one line per trial report.

Ray Tune hands every ``ray.train.report`` of a trial to the driver's callbacks; this one
prints it as a line that reads the same in a terminal, a ``nohup`` log and ``ray job logs``:

    [train] lora-r16-all-lr0.001-s0-1a2b3c4d  step 30/60  61,440 tokens  214 tok/s  loss 1.234  ETA 3m05s
    [eval]  lora-r16-all-lr0.001-s0-1a2b3c4d  step 30/60  milestone 1/2  learning +0.120 ± 0.020  forgetting -0.050 ± 0.010  (eval 41 s)

The ETA is the trial's remaining steps at the pace it has kept since its first report (its
evals included); before a second report, at its training throughput.
"""

from __future__ import annotations

import math
import time

from ray.tune import Callback

from lfl_ray.mlflow_schema import Metric
from lfl_ray.sweep.search import trial_of_config
from lfl_ray.sweep.spec import SweepSpec


def duration(seconds: float) -> str:
    """``42s``, ``3m05s``, ``1h02m``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _number(result: dict, key: str) -> float | None:
    value = result.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


class TrainingProgress(Callback):
    """Prints a line per trial report (and one per milestone) through ``log``."""

    def __init__(self, spec: SweepSpec, log=print):
        self.steps = spec.budget.steps
        self.tokens_per_step = spec.budget.tokens_per_step
        self.milestones = len(spec.budget.milestones)
        self.spec, self.log = spec, log
        self._keys: dict[str, str] = {}
        self._first: dict[str, tuple[float, int]] = {}
        """Trial id -> (time, step) of the first report this driver saw (a resumed trial
        starts counting again)."""

    def __getstate__(self):
        # Tune pickles its callbacks with the experiment (tuner.pkl); a resumed sweep prints with print.
        return {**self.__dict__, "log": None, "_first": {}}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.log = self.log or print

    def _key(self, trial) -> str:
        if trial.trial_id not in self._keys:
            self._keys[trial.trial_id] = trial_of_config(self.spec, trial.config).key
        return self._keys[trial.trial_id]

    def eta(self, trial_id: str, step: int, tokens_per_s: float | None, now: float) -> float | None:
        """Seconds left for a trial at ``step`` (None when nothing says yet)."""
        left = self.steps - step
        if left <= 0:
            return 0.0
        first_time, first_step = self._first.setdefault(trial_id, (now, step))
        if step > first_step and now > first_time:
            return left * (now - first_time) / (step - first_step)
        if tokens_per_s:
            return left * self.tokens_per_step / tokens_per_s
        return None

    def lines(self, key: str, trial_id: str, result: dict, now: float) -> list[str]:
        """The lines of one report (a training line, and an eval line at a milestone)."""
        step = _number(result, "step")
        if step is None:
            return []
        step = int(step)
        tokens, speed = _number(result, Metric.TOKENS), _number(result, Metric.TOKENS_PER_S)
        loss = _number(result, Metric.TRAIN_LOSS)
        eta = self.eta(trial_id, step, speed, now)
        parts = [f"[train] {key}", f"step {step}/{self.steps}"]
        if tokens is not None:
            parts.append(f"{int(tokens):,} tokens")
        if speed is not None:
            parts.append(f"{speed:,.0f} tok/s")
        if loss is not None:
            parts.append(f"loss {loss:.4f}")
        parts.append("done" if step >= self.steps else f"ETA {duration(eta)}" if eta is not None else "ETA ?")
        out = ["  ".join(parts)]
        milestone = _number(result, Metric.MILESTONE)
        if milestone is not None and _number(result, Metric.LEARNING) is not None:
            parts = [f"[eval]  {key}", f"step {step}/{self.steps}", f"milestone {int(milestone)}/{self.milestones}"]
            for name, se in ((Metric.LEARNING, Metric.LEARNING_SE), (Metric.FORGETTING, Metric.FORGETTING_SE)):
                value, error = _number(result, name), _number(result, se)
                if value is not None:
                    parts.append(f"{name} {value:+.3f}" + (f" ± {error:.3f}" if error is not None else ""))
            seconds = _number(result, Metric.EVAL_SECONDS)
            if seconds is not None:
                parts.append(f"(eval {duration(seconds)})")
            out.append("  ".join(parts))
        return out

    def on_trial_result(self, iteration, trials, trial, result, **info):
        try:
            for line in self.lines(self._key(trial), trial.trial_id, result, time.monotonic()):
                self.log(line)
        except Exception as exc:  # noqa: BLE001 - a progress line must never stop a sweep
            self.log(f"[train] (progress line failed: {exc!r})")
