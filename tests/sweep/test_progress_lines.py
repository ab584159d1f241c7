"""The driver's progress line per trial report (the lines of a real sweep are in
tests/data/test_custom_sweep.py's output)."""

from __future__ import annotations

import pickle

from lfl_ray.sweep.progress import TrainingProgress, duration
from lfl_ray.sweep.study import load_study


def _progress(lines: list):
    spec = load_study("code_ift", preset="smoke", name="progress").spec()
    return spec, TrainingProgress(spec, lines.append)


def test_a_line_per_report_with_eta_and_one_per_milestone():
    spec, progress = _progress([])
    steps, per_step = spec.budget.steps, spec.budget.tokens_per_step
    first = progress.lines("lora-key", "t1", {"step": 2, "tokens": 2 * per_step, "tokens_per_s": 100.0,
                                              "train_loss": 1.23456}, now=0.0)
    assert first == [f"[train] lora-key  step 2/{steps}  {2 * per_step:,} tokens  100 tok/s  loss 1.2346  "
                     f"ETA {duration((steps - 2) * per_step / 100.0)}"]
    # From the second report on, the ETA is the pace kept so far (evals included): 10 s a step here.
    mid = progress.lines("lora-key", "t1", {"step": 4, "tokens": 4 * per_step, "tokens_per_s": 100.0,
                                            "train_loss": 1.2, "milestone": 1, "learning": 0.1234,
                                            "learning_se": 0.02, "forgetting": -0.05, "eval_seconds": 41.0},
                         now=20.0)
    assert mid[0].endswith(f"ETA {duration((steps - 4) * 10.0)}")
    assert mid[1] == (f"[eval]  lora-key  step 4/{steps}  milestone 1/{len(spec.budget.milestones)}  "
                      "learning +0.123 ± 0.020  forgetting -0.050  (eval 41s)")
    assert progress.lines("lora-key", "t1", {"step": steps}, now=30.0) == [f"[train] lora-key  step {steps}/{steps}  done"]
    assert progress.lines("lora-key", "t1", {"done": True}, now=31.0) == []  # a report without a step


def test_durations_read_well():
    assert [duration(s) for s in (4.4, 65, 3600 + 125)] == ["4s", "1m05s", "1h02m"]


def test_it_pickles_with_the_experiment_and_never_raises():
    lines = []
    _, progress = _progress(lines)
    restored = pickle.loads(pickle.dumps(progress))  # Tune keeps its callbacks in tuner.pkl
    assert restored.log is print

    class Trial:
        trial_id, config = "t9", {"no": "such trial"}

    progress.on_trial_result(0, [], Trial(), {"step": 1})
    assert lines and lines[0].startswith("[train] (progress line failed")
