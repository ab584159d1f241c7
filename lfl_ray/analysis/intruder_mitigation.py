"""Intruder-dimension mitigation as a free trade-off: evals only, no training.

For each LoRA trial's last checkpoint, peft's ``reduce_intruder_dimension`` scales the
intruder directions of every adapted matrix (Shuttleworth et al. 2024) by a strength
lambda: W_tuned + (lambda - 1) * (intruder part of W_tuned), so 1.0 leaves the weights as
they are and 0.0 removes the intruders. The adapter as trained and each scaled one are
evaluated on the sweep's own eval items (the evaluator is rebuilt from the logged
``sweep_spec.json``, the base result comes from the eval cache), so every change is paired
over the same items: "scaling intruders by 0.75 cut forgetting by X ± SE at a learning cost
of Y ± SE". Each evaluation's per-item JSON is logged on the trial's run
(``MITIGATION_EVAL``), the summary beside the report (``SUMMARY``) and under ``analysis/``
of the parent run, where ``lfl-ray analyse report`` finds it.

Cost: (1 + strengths) evaluations per LoRA trial, plus one SVD pair per adapted matrix and
strength; no training.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import torch

from lfl_ray.analysis.intruders import IntruderSettings, find_intruders
from lfl_ray.analysis.runs import Sweep, Trial, config_labels
from lfl_ray.errors import ConfigError
from lfl_ray.mlflow_schema import Artifact, Metric, Param

STRENGTHS = (0.75, 0.5)
"""Default strengths (lambda): the paper's ~0.7 and a stronger cut."""
SUMMARY = "intruder_mitigation.json"
"""The summary file (beside the report; under ``Artifact.ANALYSIS`` on the parent run).
A schema name that belongs in ``lfl_ray.mlflow_schema.Artifact``."""
REDUCED_ADAPTER = "intruders_scaled"
"""Name of the scaled adapter peft adds beside ``default``."""


def mitigation_eval_artifact(strength: float) -> str:
    """Trial run: the EvalResult JSON of the adapter with intruders scaled by ``strength``
    (1.0: as trained, re-evaluated here). Belongs in ``mlflow_schema.Artifact`` too."""
    return f"{Artifact.EVALS}/intruder_mitigation/lambda_{strength:.2f}.json"


@dataclass(frozen=True)
class StrengthPoint:
    """One strength on one trial: intruders left, learning, forgetting and the paired change."""

    strength: float
    intruders: int
    learning: float
    forgetting: float
    delta_learning: float
    """Learning of the scaled adapter minus the adapter as trained (same items)."""
    delta_learning_se: float
    delta_forgetting: float
    delta_forgetting_se: float
    artifact: str = ""


@dataclass(frozen=True)
class TrialMitigation:
    """Every strength on one LoRA trial."""

    trial_id: str
    run_id: str
    label: str
    tokens: int | None
    """Training tokens of the checkpoint (the trial's tokens trained)."""
    intruders_before: int
    learning: float
    """The adapter as trained, evaluated here."""
    forgetting: float
    points: tuple[StrengthPoint, ...]


def _sign(metric: str, negated: str) -> float:
    return -1.0 if metric == negated else 1.0


def paired_change(a, b, metric: str, sign: float) -> tuple[float, float]:
    """``sign * (a - b)`` for ``metric`` over the same items, and its paired SE."""
    from lfl_ray.eval.milestone import metric_difference

    delta, se = metric_difference(a, b, metric)
    return sign * delta, (se if se is not None else math.nan)


def count_intruders(peft_model, settings: IntruderSettings) -> int:
    """Intruders of the active adapter, over every adapted matrix."""
    from lfl_ray.analysis.weights import lora_pairs

    return sum(find_intruders(p.base, p.tuned, settings).count
               for p in lora_pairs(peft_model, unload=False))


def scale_intruders(peft_model, strength: float, settings: IntruderSettings) -> None:
    """Add (and activate) an adapter with the ``default`` adapter's intruders scaled by
    ``strength`` (peft's ``reduce_intruder_dimension``); an earlier scaled one is replaced."""
    from peft.tuners.lora.intruders import reduce_intruder_dimension

    peft_model.set_adapter("default")
    if REDUCED_ADAPTER in peft_model.peft_config:
        peft_model.delete_adapter(REDUCED_ADAPTER)
    with torch.no_grad():
        reduce_intruder_dimension(peft_model, new_adapter_name=REDUCED_ADAPTER,
                                  top_k=settings.top_k, threshold_epsilon=settings.epsilon,
                                  mitigation_lambda=float(strength), logging_sink=None)


def mitigate_trial(trial: Trial, evaluate: Callable, compare: Callable, base_result, *,
                   strengths: Sequence[float] = STRENGTHS,
                   settings: IntruderSettings = IntruderSettings(), label: str = "",
                   base_model: torch.nn.Module | None = None,
                   log_eval: Callable[[str, dict], None] | None = None) -> TrialMitigation:
    """Evaluate one LoRA trial's checkpoint as trained and with its intruders scaled (no
    evaluation and no points when it has no intruders: scaling would change nothing).

    ``evaluate(model) -> EvalResult`` runs the sweep's evals; ``compare(result, base) ->
    metrics`` gives ``learning``/``forgetting`` (``MilestoneEvaluator.compare``);
    ``log_eval(artifact, json)`` keeps each per-item result (on the trial's run)."""
    from peft import PeftModel

    from lfl_ray.analysis.weights import checkpoint_kind, model_folder
    from lfl_ray.models import load_model

    settings.validate()
    for s in strengths:
        if not (isinstance(s, (int, float)) and 0 <= s <= 1):
            raise ConfigError("--strengths", s, "must be numbers in [0, 1]")
    if not trial.checkpoint:
        raise ConfigError("checkpoint", trial.trial_id, "the trial has no checkpoint tag")
    folder = model_folder(trial.checkpoint)
    if checkpoint_kind(folder) != "lora":
        raise ConfigError("checkpoint", str(folder), "intruder mitigation needs a LoRA adapter")
    base_model = base_model if base_model is not None else load_model(trial.params.get(Param.MODEL, ""))
    model = PeftModel.from_pretrained(base_model, str(folder))
    model.eval()
    learn_metric = str(trial.params.get(Param.LEARNING_METRIC, "heldout_loss"))
    forget_metric = str(trial.params.get(Param.FORGETTING_METRIC, "general_loss"))
    learn_sign, forget_sign = _sign(learn_metric, "heldout_loss"), _sign(forget_metric, "mc_mean")
    try:
        before = count_intruders(model, settings)
        if before == 0:  # every scaled adapter would equal the trained one: nothing to evaluate
            final = trial.final
            return TrialMitigation(trial.trial_id, trial.run_id, label or trial.trial_id,
                                   trial.trained_tokens or (final.tokens if final else None), 0,
                                   final.learning if final else math.nan,
                                   final.forgetting if final else math.nan, ())
        trained = evaluate(model)
        if log_eval:
            log_eval(mitigation_eval_artifact(1.0), trained.to_json())
        reference = compare(trained, base_result)
        points = []
        for strength in strengths:
            scale_intruders(model, strength, settings)
            result = evaluate(model)
            metrics = compare(result, base_result)
            dl, dl_se = paired_change(result, trained, learn_metric, learn_sign)
            df, df_se = paired_change(result, trained, forget_metric, forget_sign)
            artifact = mitigation_eval_artifact(strength)
            if log_eval:
                log_eval(artifact, result.to_json())
            points.append(StrengthPoint(float(strength), count_intruders(model, settings),
                                        metrics.get(Metric.LEARNING, math.nan),
                                        metrics.get(Metric.FORGETTING, math.nan),
                                        dl, dl_se, df, df_se, artifact))
    finally:
        model.unload()  # the base model serves the next trial
    return TrialMitigation(trial.trial_id, trial.run_id, label or trial.trial_id,
                           trial.trained_tokens or (trial.final.tokens if trial.final else None),
                           before, reference.get(Metric.LEARNING, math.nan),
                           reference.get(Metric.FORGETTING, math.nan), tuple(points))


def sweep_evaluator(sweep: Sweep, log=print):
    """The sweep's own evaluator and base result, rebuilt from its logged ``sweep_spec.json``
    (the same items: data and base evals come from the caches the sweep filled)."""
    from lfl_ray.analysis.runs import load_spec_json
    from lfl_ray.sweep.runner import _prepare_evals
    from lfl_ray.sweep.spec import SweepSpec

    data = load_spec_json(sweep)
    if data is None:
        raise ConfigError("experiment", sweep.name, f"has no {Artifact.SWEEP_SPEC} on its parent "
                          "run, so its evals cannot be rebuilt")
    spec = SweepSpec.from_dict(data).validate()
    _, _, evaluator, base = _prepare_evals(spec, log)
    return evaluator, base


def mitigate_sweep(sweep: Sweep, *, strengths: Sequence[float] = STRENGTHS,
                   settings: IntruderSettings = IntruderSettings(), evaluator=None,
                   base_result=None, log_to_mlflow: bool = True, trials: str = "all",
                   log=print) -> dict:
    """Every LoRA trial with a checkpoint here (``trials="best"``: only the one that learned
    most at its last milestone, the one the findings quote), at every strength; returns the
    summary dict (what ``SUMMARY`` holds). ``evaluator`` (a ``MilestoneEvaluator``) defaults
    to the sweep's own; ``base_result`` to its base result."""
    from lfl_ray.analysis.weight_changes import with_checkpoints
    from lfl_ray.models import load_model, load_tokenizer
    from lfl_ray.tracking import RunLogger

    start = time.monotonic()
    if evaluator is None:
        evaluator, base_result = sweep_evaluator(sweep, log)
    elif base_result is None:
        base_result = evaluator.base()
    ready, skipped = with_checkpoints([t for t in sweep.usable if t.is_lora])
    if trials == "best" and ready:
        top = max(ready, key=lambda t: t.final.learning if t.final and math.isfinite(t.final.learning) else -math.inf)
        skipped += [(t, "not the LoRA trial that learned most (--mitigation-trials best)") for t in ready if t is not top]
        ready = [top]
    labels = config_labels(sweep.usable)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    bases: dict[str, tuple] = {}
    results = []
    for trial in ready:
        spec = str(trial.params.get(Param.MODEL, ""))
        if spec not in bases:
            dtype = torch.bfloat16 if device == "cuda" else torch.float32
            bases[spec] = (load_model(spec, dtype=dtype).to(device), load_tokenizer(spec))
        model, tokenizer = bases[spec]
        logger = RunLogger(sweep.tracking_uri, trial.run_id) if log_to_mlflow else None
        log(f"[intruders] {trial.trial_id}: strengths {list(strengths)}")
        results.append(mitigate_trial(
            trial, lambda m: evaluator(m, tokenizer), evaluator.compare, base_result,
            strengths=strengths, settings=settings, label=labels[trial.trial_id],
            base_model=model, log_eval=(lambda path, obj: logger.log_json(obj, path)) if logger else None))
    return {"settings": asdict(settings), "strengths": [float(s) for s in strengths],
            "trials": [asdict(r) for r in results],
            "skipped": [{"trial_id": t.trial_id, "why": why} for t, why in skipped],
            "evaluations": sum(1 + len(r.points) for r in results if r.points),
            "seconds": round(time.monotonic() - start, 1)}


def finite_or_none(obj):
    """``obj`` with every non-finite float as None (strict JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_or_none(v) for v in obj]
    return obj


def write_summary(summary: dict, out_dir: str | Path) -> Path:
    path = Path(out_dir) / SUMMARY
    path.write_text(json.dumps(finite_or_none(summary), indent=1))
    return path


def read_summary(sweep: Sweep, out_dir: str | Path | None = None) -> dict | None:
    """The mitigation summary beside the report, else the one on the parent run, else None."""
    if out_dir is not None and (Path(out_dir) / SUMMARY).is_file():
        return json.loads((Path(out_dir) / SUMMARY).read_text())
    if sweep.parent_run_id is None:
        return None
    from lfl_ray.analysis.runs import _artifact_text

    text = _artifact_text(sweep.tracking_uri, sweep.parent_run_id, f"{Artifact.ANALYSIS}/{SUMMARY}")
    return json.loads(text) if text else None


def points_from_summary(summary: dict | None) -> list[tuple[dict, dict]]:
    """(trial entry, strength point) pairs of a summary, in order."""
    if not summary:
        return []
    return [(trial, point) for trial in summary.get("trials", []) for point in trial.get("points", [])]


def _num(value, fmt: str) -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, fmt)


def rows(summary: dict | None) -> list[tuple]:
    """One row per trial and strength: intruders, learning, forgetting and the paired changes."""
    table = []
    for trial, p in points_from_summary(summary):
        table.append((trial["label"], trial["trial_id"], f"{p['strength']:.2f}",
                      f"{trial['intruders_before']} -> {p['intruders']}",
                      _num(p["learning"], "+.3f"), _num(p["forgetting"], "+.3f"),
                      f"{_num(p['delta_learning'], '+.4f')} ± {_num(p['delta_learning_se'], '.4f')}",
                      f"{_num(p['delta_forgetting'], '+.4f')} ± {_num(p['delta_forgetting_se'], '.4f')}"))
    return table


HEADER = ("config", "trial", "strength", "intruders", "learning", "forgetting",
          "learning change ± SE", "forgetting change ± SE")


def sentence(trial: dict, point: dict) -> str:
    """"scaling intruders by 0.75 cut forgetting by X ± SE at a learning cost of Y ± SE"."""
    nan = math.nan
    df, df_se, dl, dl_se = (nan if point.get(k) is None else point[k] for k in (
        "delta_forgetting", "delta_forgetting_se", "delta_learning", "delta_learning_se"))
    forget = (f"cut forgetting by {-df:.4f} ± {df_se:.4f}" if df < 0 else
              f"raised forgetting by {df:.4f} ± {df_se:.4f}")
    learn = (f"at a learning cost of {-dl:.4f} ± {dl_se:.4f}" if dl <= 0 else
             f"with a learning gain of {dl:.4f} ± {dl_se:.4f}")
    return (f"On {trial['label']} ({trial['trial_id']}), scaling intruders by "
            f"{point['strength']:g} {forget} {learn} (paired over the same eval items).")


def cost_text(summary: dict | None) -> str:
    if not summary:
        return ""
    return (f"{summary.get('evaluations', 0)} evaluations, no training, "
            f"{summary.get('seconds', 0):.0f} s on this machine.")
