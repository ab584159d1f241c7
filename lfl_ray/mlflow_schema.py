"""The MLflow layout of a sweep, and the one writer of it: every tag, param, metric and artifact.

One experiment per sweep (named after it, created with an absolute artifact location):

- **parent run** (``Tag.ROLE = Role.SWEEP``): the flattened sweep spec as params, the spec
  itself as ``Artifact.SWEEP_SPEC``, the base model's eval metrics as ``<metric>_base`` at
  step 0 and its per-item EvalResult JSON as ``Artifact.BASE_EVAL``, the held-out and
  general-text rows every trial is measured on (``Artifact.HELDOUT_DATA``,
  ``Artifact.GENERAL_DATA``); ``Tag.STATUS`` when it ends. The experiment's description is
  ``experiment_description``. ``lfl-ray analyse`` logs its figures and tables under ``Artifact.ANALYSIS``.
- **one child run per trial** (``Tag.ROLE = Role.TRIAL``), nested by ``Tag.PARENT``, named
  and found again by ``Tag.TRIAL_KEY`` (a resumed or retried trial keeps one run), grouped by
  ``Tag.FAMILY``; ``Tag.REGIME``, ``Tag.STATUS`` (see ``Status``), ``Tag.ERROR`` when it
  failed and ``Tag.CHECKPOINT`` once it saved one. Params: the trial's own fields (``Param``
  names the ones analysis relies on). Metrics are logged with step = optimizer step:
  ``Metric.TRAINING`` along training and, at each eval milestone, ``learning``,
  ``forgetting`` with their ``_se``, every eval metric ``<m>`` with ``<m>_delta`` and
  ``<m>_delta_se`` (change from base, paired SE), and the per-item EvalResult JSON as
  ``Artifact.milestone_eval(tokens)`` (named by tokens). ``Metric.TOKENS`` is logged at every
  one of those steps with the training tokens seen, for the UI's x-axis and for the reader
  (``step_tokens``). Stores written by earlier lfl-ray logged step = tokens (with no ``tokens``
  metric, or one equal to its step); ``step_tokens`` reads them as well. Its inputs
  (``log_datasets``): the training, held-out and general-text
  datasets. A LoRA trial logs its latest adapter as ``Artifact.ADAPTER``; full finetuning
  logs no weights (``Tag.CHECKPOINT`` says where they are). System metrics
  (``Metric.SYSTEM_PREFIX``) come from MLflow's own monitor.

Writers: the sweep driver (``ensure_experiment``, ``start_parent``, ``log_base``,
``log_eval_data``, ``end_run``), the Tune trainable (``child_run``, ``log_datasets``,
``record_error``, ``end_run``), the status callback (``find_trial_runs``, ``running_trials``,
``set_checkpoint``, ``clear_error``, ``end_run``) and the training loop
(``log_trainable_params``, ``log_training``, ``log_milestone``, ``log_adapter``). The reader
is ``lfl_ray.analysis.runs``; it takes every name from here. ``tests/analysis`` writes its
synthetic sweeps through these functions, so a change of layout that the reader does not
follow fails a test.

MLflow is imported inside the functions: this module is imported by Ray workers and CLIs
that should not pay for it until they log.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any, Mapping

from lfl_ray.errors import ConfigError
from lfl_ray.tracking import RunLogger, with_retries


class Tag:
    """Run tags (strings)."""

    ROLE = "lfl.role"
    """Which kind of run: ``Role.SWEEP`` (the parent) or ``Role.TRIAL`` (a child)."""
    PARENT = "mlflow.parentRunId"
    """A trial's parent run id (MLflow's own tag: the UI nests the run under it)."""
    TRIAL_KEY = "lfl.trial_key"
    """The trial's unique, stable name (also its run name); resume finds the run by it."""
    FAMILY = "lfl.family"
    """How analysis groups the trial: ``full``, ``full+wd``, ``lora-r16-all``, ..."""
    REGIME = "lfl.regime"
    """The training regime (``code_ift``, ``math_cpt``, ...), on the parent and every trial."""
    STATUS = "lfl.status"
    """Why the run ended: one of ``Status`` (MLflow's own status is coarser: ``MlflowStatus``)."""
    ERROR = "lfl.error"
    """The end of the error text (traceback) of a FAILED run, at most ``ERROR_CHARS``."""
    CHECKPOINT = "lfl.checkpoint"
    """Folder of the trial's last checkpoint (an HF model or peft adapter under ``model/``):
    for full finetuning, where its weights are (too large to log as an artifact)."""


class Role:
    """Values of ``Tag.ROLE``."""

    SWEEP = "sweep"
    """The sweep's parent run."""
    TRIAL = "trial"
    """One trial's child run."""


class Status:
    """Values of ``Tag.STATUS``: how a run ended (or that it has not)."""

    FINISHED = "FINISHED"
    """Trained its whole budget (a trial) or ran every trial (the parent)."""
    FAILED = "FAILED"
    """Raised; ``Tag.ERROR`` holds the error."""
    EARLY_STOPPED = "EARLY_STOPPED"
    """Stopped by the scheduler (ASHA) before its budget: no error of the trial."""
    INTERRUPTED = "INTERRUPTED"
    """Cut off by the user (Ctrl-C); ``--resume`` continues it."""
    RUNNING = "RUNNING"
    """Still training (or its sweep was killed before it could be closed)."""
    ALL = (FINISHED, FAILED, EARLY_STOPPED, INTERRUPTED, RUNNING)


class MlflowStatus:
    """MLflow's own run statuses (``RunInfo.status``), as the writer sets them."""

    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"
    RUNNING = "RUNNING"
    ALL = (FINISHED, FAILED, KILLED, RUNNING)


MLFLOW_STATUS_OF = {Status.FINISHED: MlflowStatus.FINISHED, Status.FAILED: MlflowStatus.FAILED,
                    Status.EARLY_STOPPED: MlflowStatus.FINISHED, Status.INTERRUPTED: MlflowStatus.KILLED,
                    Status.RUNNING: MlflowStatus.RUNNING}
"""The MLflow status a run ends with, for each ``Status``. A trial the scheduler stopped early
ends FINISHED (with ``lfl.status=EARLY_STOPPED``): it is ASHA doing its job, and KILLED reads
as a failure in the MLflow UI."""

STATUS_FROM_MLFLOW = {MlflowStatus.FINISHED: Status.FINISHED, MlflowStatus.KILLED: Status.INTERRUPTED,
                      MlflowStatus.FAILED: Status.FAILED, MlflowStatus.RUNNING: Status.RUNNING}
"""The reader's guess for a run without ``Tag.STATUS`` (a store written before the tag)."""

ERROR_CHARS = 5000
"""How much of an error's text (its end: the traceback's last frames) ``Tag.ERROR`` keeps."""


class Metric:
    """Metric names. A trial's steps are optimizer steps (``Metric.TOKENS`` gives each one's
    training tokens); the parent's ``<m>_base`` are at step 0.

    How the MLflow UI (3.x) orders them: metric columns of the runs table, its column menu and
    the charts of a section go by key (alphabetically); a key's ``prefix/`` makes a chart
    section of its own, and those sections come before "Model metrics". So eval metrics keep
    plain names and the base model's values sit beside them (``<m>``, ``<m>_base``,
    ``<m>_delta``) rather than in a section above every trial's charts."""

    LEARNING = "learning"
    """At each milestone: how much the trial learned, signed, higher = more (the learning
    metric's change from base, negated for losses)."""
    LEARNING_SE = "learning_se"
    """Paired standard error of ``learning`` over the eval items."""
    FORGETTING = "forgetting"
    """At each milestone: how much the trial forgot, signed, higher = more (negative: the
    general score improved)."""
    FORGETTING_SE = "forgetting_se"
    """Paired standard error of ``forgetting``."""
    PRIMARY = (LEARNING, FORGETTING)
    """The pair every sweep is judged on; their SEs are ``<m>_se`` (not ``<m>_delta_se``)."""
    HEADLINE = (LEARNING, LEARNING_SE, FORGETTING, FORGETTING_SE)
    """The primary pair and their SEs: in MLflow they are keyed ``HEADLINE_PREFIX + <m>``
    (``mlflow_key``); Ray Tune, the analysis and the eval JSON use the plain names."""
    HEADLINE_PREFIX = "Headline/"
    """Why the prefix: the runs table orders metric columns by code point (capitals before
    lower case) and the chart view puts a ``prefix/`` section above "Model metrics", so
    ``Headline/learning`` and ``Headline/forgetting`` come first in both, in a chart section
    titled "Headline" (a run's page titles its charts ``learning``, ``forgetting``). Stores written by earlier
    lfl-ray used the plain names; the reader takes both (``metric_name``)."""

    TRAIN_LOSS = "train_loss"
    """Mean training loss per loss token since the last report."""
    LR = "learning_rate"
    """The learning rate the scheduler set at that step (the param ``lr`` is the trial's peak rate)."""
    TOKENS_PER_S = "tokens_per_s"
    """Training throughput since the last report (all workers)."""
    TOKENS = "tokens"
    """Training tokens seen (all workers) by that optimizer step, logged once at every step that
    has metrics (``log_trainable_params`` at 0, ``log_training`` at each report, milestones
    included): the MLflow UI plots any metric against tokens with this metric as its x-axis,
    and the reader turns a step into tokens with it (``step_tokens``)."""
    TRAINABLE_PARAMS = "trainable_params"
    """Trainable parameter count (step 0, once)."""
    TRAINABLE_FRACTION = "trainable_fraction"
    """Trainable parameters over all parameters (step 0, once)."""
    MILESTONE = "milestone"
    """1-based milestone index: reported to Ray Tune (ASHA's time attribute), not to MLflow."""
    STEP = "step"
    """Optimizer steps taken: reported to Ray Tune; in MLflow it is every trial metric's step."""
    TRAINING = (TRAIN_LOSS, LR, TOKENS_PER_S, TOKENS, TRAINABLE_PARAMS, TRAINABLE_FRACTION, MILESTONE, STEP)
    """Metrics that are not eval results (the reader leaves them out of milestones)."""

    EVAL_SECONDS = "eval_seconds"
    """Wall time of one milestone's evaluation (no base value, so no delta)."""
    EVAL_LOSS_RANKS = "eval_loss_ranks"
    """How many ranks scored the loss suites' shards at that milestone (split loss evals)."""

    BASE_SUFFIX = "_base"
    """Parent run: ``<m>_base`` is the base model's value of eval metric ``<m>``."""
    LEGACY_BASE_PREFIX = "base/"
    """Stores written by earlier lfl-ray named the base value ``base/<m>`` (``base_metrics`` reads both)."""
    SE_SUFFIX = "_se"
    """``<m>_se``: the eval's own standard error of ``<m>`` (or of a primary metric)."""
    DELTA_SUFFIX = "_delta"
    """``<m>_delta``: the tuned value of ``<m>`` minus the base value."""
    DELTA_SE_SUFFIX = "_delta_se"
    """``<m>_delta_se``: the paired standard error of ``<m>_delta``."""
    DIVERSITY_PREFIX = "diversity_"
    """The diversity suite's metrics (``diversity_unique``, ``diversity_distinct_2``, ...)."""
    SYSTEM_PREFIX = "system/"
    """Trial: MLflow's system metrics while it trained (``system/cpu_utilization_percentage``,
    ``system/system_memory_usage_megabytes``, ``system/gpu_*`` ...), every ~10 s; their steps
    count samples, not optimizer steps (``lfl_ray.train.system_metrics``)."""


def mlflow_key(name: str) -> str:
    """The MLflow key of metric ``name``: ``Headline/<m>`` for ``Metric.HEADLINE``, else ``name``."""
    return f"{Metric.HEADLINE_PREFIX}{name}" if name in Metric.HEADLINE else name


def metric_name(key: str) -> str:
    """The metric an MLflow key holds (``mlflow_key``'s inverse; a plain key is its own name)."""
    return key[len(Metric.HEADLINE_PREFIX):] if key.startswith(Metric.HEADLINE_PREFIX) else key


def metrics_by_name(metrics: Mapping[str, float]) -> dict[str, float]:
    """A run's MLflow metrics (``run.data.metrics``) keyed by metric name (``metric_name``)."""
    return {metric_name(key): float(value) for key, value in metrics.items()}


def learning_history(mlflow_client, run_id: str) -> list:
    """A trial run's ``learning`` values (MLflow ``Metric`` objects, one per eval milestone),
    under ``Headline/learning`` or, in a store written by earlier lfl-ray, ``learning``."""
    return (mlflow_client.get_metric_history(run_id, mlflow_key(Metric.LEARNING))
            or mlflow_client.get_metric_history(run_id, Metric.LEARNING))


def base_metric(name: str) -> str:
    """The parent run's name for the base model's value of eval metric ``name``."""
    return f"{name}{Metric.BASE_SUFFIX}"


def base_metrics(parent_metrics: Mapping[str, float]) -> dict[str, float]:
    """The base model's eval metrics from the parent run's metrics (``<m>_base``, or an older
    store's ``base/<m>``), by eval metric name."""
    base = {}
    for key, value in parent_metrics.items():
        if key.startswith(Metric.LEGACY_BASE_PREFIX):
            base[key[len(Metric.LEGACY_BASE_PREFIX):]] = float(value)
        elif key.endswith(Metric.BASE_SUFFIX):
            base[key[:-len(Metric.BASE_SUFFIX)]] = float(value)
    return base


def delta_metric(name: str) -> str:
    """The name of ``name``'s change from base."""
    return f"{name}{Metric.DELTA_SUFFIX}"


def se_metric(name: str) -> str:
    """The name of ``name``'s standard error."""
    return f"{name}{Metric.SE_SUFFIX}"


def change_se_metric(name: str) -> str:
    """The SE of ``name``'s change from base: ``learning_se`` for the primary pair (they are
    changes already), ``<m>_delta_se`` for an eval metric."""
    return se_metric(name) if name in Metric.PRIMARY else f"{name}{Metric.DELTA_SE_SUFFIX}"


def is_derived_metric(name: str) -> bool:
    """A delta or an SE of another metric (not a value of its own)."""
    return name.endswith((Metric.DELTA_SUFFIX, Metric.SE_SUFFIX))


class Param:
    """Trial params that analysis reads (a trial logs its own fields; values are strings).
    Only the fields its method has are logged: a full-FT run has no rank, alpha or targets."""

    METHOD = "method"
    """``Method.FULL`` or ``Method.LORA``."""
    LR = "lr"
    SEED = "seed"
    WEIGHT_DECAY = "weight_decay"
    ATTENTION_DROPOUT = "attention_dropout"
    HIDDEN_DROPOUT = "hidden_dropout"
    RANK = "rank"
    ALPHA = "alpha"
    """The effective alpha (``2 * rank`` under the paper's rule)."""
    TARGETS = "targets"
    """``all``, ``attention``, ``mlp`` or module names joined by ``+``."""
    TARGET_MODULES = "target_modules"
    """The module names ``targets`` means on this model's architecture, joined by ``+`` (from its
    config: ``q_proj+k_proj+...`` on Llama, ``o_proj+qkv_proj+...`` on Phi-3)."""
    LORA_DROPOUT = "lora_dropout"
    USE_RSLORA = "use_rslora"
    USE_DORA = "use_dora"
    LORAPLUS_LR_RATIO = "loraplus_lr_ratio"
    HIDDENKEY = "hiddenkey"
    """``True`` when HiddenKey dropout is on (its settings follow as ``hiddenkey_*``)."""
    OPTIMIZER = "optimizer"
    MODEL = "model"
    LEARNING_METRIC = "learning_metric"
    """The eval metric ``learning`` is the change of."""
    FORGETTING_METRIC = "forgetting_metric"
    """The eval metric ``forgetting`` is the change of."""


METRIC_PARAM = {Metric.LEARNING: Param.LEARNING_METRIC, Metric.FORGETTING: Param.FORGETTING_METRIC}
"""The trial param naming the eval metric that each primary metric is the change of."""


class Method:
    """Values of ``Param.METHOD``."""

    FULL = "full"
    LORA = "lora"


class Artifact:
    """Artifact paths inside a run."""

    SWEEP_SPEC = "sweep_spec.json"
    """Parent: the sweep spec as JSON (secrets dropped); a sweep can be replayed from it."""
    EVALS = "evals"
    """Folder of EvalResult JSON: ``{"metrics", "items", "groups", "samples"}``."""
    BASE_EVAL = f"{EVALS}/base.json"
    """Parent: the base model's EvalResult (per-item values pair every trial's with it)."""
    ANALYSIS = "analysis"
    """Parent: what ``lfl-ray analyse`` logged (figures, tables, ``report.html``)."""
    ADAPTER = "adapter"
    """Trial (LoRA): the adapter of its latest milestone, in peft format (``adapter_config.json``,
    ``adapter_model.safetensors``); ``lfl-ray eval --adapter RUN_ID`` loads it back. Full
    finetuning logs no weights: ``Tag.CHECKPOINT`` says where they are."""
    HELDOUT_DATA = "data/heldout.pt"
    """Parent: the held-out TokenBlocks every trial's ``heldout_loss`` is measured on."""
    GENERAL_DATA = "data/general.pt"
    """Parent: the general-text TokenBlocks of ``general_loss`` and ``drift``."""

    @staticmethod
    def milestone_eval(tokens: int) -> str:
        """Trial: the EvalResult JSON of the milestone at ``tokens`` training tokens."""
        return f"{Artifact.EVALS}/milestone_{int(tokens)}.json"


# --- filters (shared by the writer and the reader) -----------------------------------------

def parent_filter() -> str:
    """``search_runs`` filter of a sweep's parent run(s)."""
    return f"tags.`{Tag.ROLE}` = '{Role.SWEEP}'"


def trial_filter(parent_id: str | None = None, key: str | None = None) -> str:
    """``search_runs`` filter of trial runs (of one parent, with one key when given)."""
    parts = [f"tags.`{Tag.ROLE}` = '{Role.TRIAL}'"]
    if parent_id is not None:
        parts.append(f"tags.`{Tag.PARENT}` = '{parent_id}'")
    if key is not None:
        parts.append(f"tags.`{Tag.TRIAL_KEY}` = '{key}'")
    return " and ".join(parts)


def step_tokens(mlflow_client, run_id: str):
    """A trial run's step -> training tokens, as a function: from the run's ``Metric.TOKENS``
    history (logged at every step that has metrics). A run without that history was written
    when steps were tokens, so a step is its tokens; a step missing from a history (an edited
    store) is scaled by the history's tokens per step (constant within a trial)."""
    history = {int(m.step): int(m.value) for m in mlflow_client.get_metric_history(run_id, Metric.TOKENS)}
    rates = [tokens / step for step, tokens in history.items() if step > 0]
    per_step = max(rates) if rates else 1.0

    def tokens_at(step: int) -> int:
        step = int(step)
        return history[step] if step in history else int(round(step * per_step))

    return tokens_at


# --- checks before anything is written ------------------------------------------------------

SECRET_MARKERS = ("token", "secret", "password", "api_key", "apikey")
"""Keys containing these never become params, and values of such env vars are masked."""


EXPERIMENT_NOTE = "mlflow.note.content"
"""Experiment tag the MLflow UI shows as the experiment's description."""


def artifact_root_for(tracking_uri: str) -> str | None:
    """Absolute artifact folder beside a sqlite store (None for servers: they decide)."""
    if tracking_uri.startswith("sqlite:///"):
        return str(Path(tracking_uri[len("sqlite:///"):]).parent / "artifacts")
    return None


def check_tracking_uri(uri: str, timeout: float = 5.0) -> None:
    """Fail early (ConfigError on --tracking-uri) when the store cannot be written or reached."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "sqlite":
        folder = Path(uri[len("sqlite:///"):]).parent
        check_writable("--tracking-uri", uri, folder)
    elif parsed.scheme in ("http", "https"):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout) as resp:
                if resp.status != 200:
                    raise OSError(f"HTTP {resp.status}")
        except (OSError, socket.timeout) as exc:
            raise ConfigError("--tracking-uri", uri, "must be a reachable MLflow server "
                              f"(GET /health failed: {exc})") from exc
    elif parsed.scheme in ("", "file"):
        check_writable("--tracking-uri", uri, Path(parsed.path or uri))
    elif parsed.scheme not in ("databricks", "postgresql", "mysql"):
        raise ConfigError("--tracking-uri", uri, "must be sqlite:///abs/path.db, http(s)://host:port, "
                          "a folder, or a database URI")


def check_writable(field: str, value: str, folder: Path) -> None:
    """ConfigError on ``field`` unless ``folder`` is a writable folder or can be made
    (checked without making it)."""
    probe = Path(folder).expanduser().absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(field, value, f"must be a writable location ({probe} is not a folder)")
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(field, value, f"must be a writable location ({probe} is not writable)")




def scrub(params: Mapping[str, Any]) -> dict[str, str]:
    """Params as strings, without anything that looks like a credential (by key, or by the
    value of a secret-looking environment variable) and without ``None`` values."""
    secrets = {v for k, v in os.environ.items() if any(m in k.lower() for m in SECRET_MARKERS) and len(v) >= 8}
    clean = {}
    for key, value in params.items():
        if value is None or any(m in key.lower() for m in SECRET_MARKERS):
            continue
        text = str(value)
        for secret in secrets:
            text = text.replace(secret, "***")
        clean[key] = text
    return clean


def scrub_nested(obj):
    """``obj`` (dicts and lists) without keys that look like credentials."""
    if isinstance(obj, dict):
        return {k: scrub_nested(v) for k, v in obj.items() if not any(m in str(k).lower() for m in SECRET_MARKERS)}
    if isinstance(obj, (list, tuple)):
        return [scrub_nested(v) for v in obj]
    return obj


def flatten(obj, prefix: str = "") -> dict:
    """Nested dataclasses/dicts as dotted keys (the parent run's params)."""
    if is_dataclass(obj):
        obj = asdict(obj)
    out: dict = {}
    if isinstance(obj, dict):
        for key, value in obj.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    out[prefix.rstrip(".")] = obj
    return out


# --- the writer ------------------------------------------------------------------------------

def client(tracking_uri: str):
    """An ``MlflowClient`` of ``tracking_uri``."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri)


def ensure_experiment(tracking_uri: str, name: str, description: str = "") -> str:
    """The experiment id for sweep ``name`` (created with an absolute artifact location);
    ``description`` becomes the experiment's note in the MLflow UI."""
    mlflow_client = client(tracking_uri)
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        experiment_id = found.experiment_id
    else:
        root = artifact_root_for(tracking_uri)
        location = str(Path(root) / name) if root else None
        experiment_id = mlflow_client.create_experiment(name, artifact_location=location)
    if description:
        with_retries(lambda: mlflow_client.set_experiment_tag(experiment_id, EXPERIMENT_NOTE, description),
                     "set experiment description")
    return experiment_id


def experiment_description(spec, note: str = "") -> str:
    """The experiment's description (markdown, shown atop its runs in the MLflow UI): what the
    sweep trains, on what, for how long, what ``learning`` and ``forgetting`` mean and how to
    read the runs. ``spec`` is a SweepSpec; ``note`` the study file's own description."""
    budget, evals = spec.budget, spec.eval
    learning = getattr(evals, "learning_metric", "heldout_loss")
    forgetting = getattr(evals, "forgetting_metric", "general_loss")
    suites = ", ".join(getattr(evals, "suites", None) or ("heldout_loss", "general_loss"))
    custom = getattr(spec, "data", None)
    data = (f"your {custom.kind} `{custom.label}` from {custom.source}" if custom is not None
            else f"the built-in `{spec.regime}` data ({spec.data_source})")
    lines = [
        # The UI shows this first line until the description is unfolded.
        f"**LoRA vs full finetuning** of `{spec.model}` on {data}: compare trials by "
        f"`{mlflow_key(Metric.LEARNING)}` and `{mlflow_key(Metric.FORGETTING)}` (the first metric "
        "columns of the runs table; the first section, \"Headline\", of the chart view).",
        "",
    ]
    lines += [note.strip(), ""] if note.strip() else []
    lines += [
        f"- **Budget per trial**: {budget.steps} optimizer steps x {budget.global_batch_size} rows x "
        f"{budget.seq_len} tokens = {budget.total_tokens:,} tokens; evals at steps "
        f"{', '.join(str(m) for m in budget.milestones)} ({suites}).",
        f"- **`{mlflow_key(Metric.LEARNING)}`**: how much a trial learned by a milestone: the change of `{learning}` "
        "from the base model, signed so that higher = learned more (a loss's drop).",
        f"- **`{mlflow_key(Metric.FORGETTING)}`**: how much it forgot: the change of `{forgetting}` from the base "
        "model, signed so that higher = forgot more (negative: the general score improved).",
        "- `<m>_delta`: an eval metric's change from the base model (the parent run holds `<m>_base`); "
        f"`<m>_delta_se`, `{mlflow_key(Metric.LEARNING_SE)}`, `{mlflow_key(Metric.FORGETTING_SE)}`: paired "
        "standard errors over the same eval items.",
        "",
        "**Reading the runs.** The parent run (`lfl.role = sweep`) holds the sweep spec "
        f"(params, `{Artifact.SWEEP_SPEC}`), the base model's evals, the held-out and general-text rows "
        f"every trial is measured on (`{Artifact.HELDOUT_DATA}`, `{Artifact.GENERAL_DATA}`) and, after "
        f"`lfl-ray analyse`, the report under `{Artifact.ANALYSIS}/`. Each trial is a run nested under it "
        f"(`lfl.role = trial`), grouped by `{Tag.FAMILY}`; `{Tag.STATUS}` is {Status.FINISHED}, "
        f"{Status.EARLY_STOPPED} (the scheduler stopped a weak trial: no failure, so MLflow shows it "
        f"FINISHED), {Status.FAILED} (the error in `{Tag.ERROR}`) or {Status.INTERRUPTED} (Ctrl-C; "
        "`--resume` continues it). A trial's metrics are logged by optimizer step (a chart's x-axis "
        f"\"Step\"); the metric `{Metric.TOKENS}` holds the training tokens seen at each step: to plot "
        f"by tokens, pick it in the chart view's gear menu (X-axis, Metric, `{Metric.TOKENS}`). A trial's "
        "Datasets are what it trained on and was measured on (rows, tokens, digest). A LoRA trial "
        f"logs its adapter under `{Artifact.ADAPTER}/`; a full-finetuning trial logs no weights, "
        f"`{Tag.CHECKPOINT}` says where they are. `lfl-ray eval --adapter <run id>` measures either "
        f"again on the same rows. `{Metric.SYSTEM_PREFIX}*`: CPU, memory (and GPU) while the trial trained.",
    ]
    return "\n".join(lines)


def find_runs(tracking_uri: str, experiment_id: str, filter_string: str) -> list:
    """Runs of the experiment matching a ``search_runs`` filter (every page)."""
    return search_all(client(tracking_uri), experiment_id, filter_string)


def search_all(mlflow_client, experiment_id: str, filter_string: str) -> list:
    """Every page of ``search_runs`` with an MlflowClient the caller already holds."""
    runs, token = [], None
    while True:
        page = mlflow_client.search_runs([experiment_id], filter_string=filter_string,
                                         max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def find_trial_runs(tracking_uri: str, experiment_id: str, parent_id: str, key: str) -> list:
    """The run(s) of trial ``key`` under parent ``parent_id`` (one, unless the store was edited)."""
    return find_runs(tracking_uri, experiment_id, trial_filter(parent_id, key))


def running_trials(tracking_uri: str, experiment_id: str, parent_id: str) -> list:
    """Trial runs of ``parent_id`` that MLflow still shows RUNNING."""
    return find_runs(tracking_uri, experiment_id,
                     f"{trial_filter(parent_id)} and attributes.status = '{MlflowStatus.RUNNING}'")


def _log_params(mlflow_client, run_id: str, params: Mapping[str, Any], what: str) -> None:
    from mlflow.entities import Param as MlflowParam

    items = [MlflowParam(k[:250], v[:6000]) for k, v in scrub(params).items()]
    for start in range(0, len(items), 100):
        chunk = items[start:start + 100]
        with_retries(lambda: mlflow_client.log_batch(run_id, params=chunk), what)


def start_parent(tracking_uri: str, experiment_id: str, *, resume: bool, name: str, regime: str,
                 params: Mapping[str, Any] | None = None, spec_json: Any = None) -> str:
    """The sweep's parent run (on ``resume`` the latest one, set RUNNING again), with
    ``params`` (the flattened spec) and ``spec_json`` as ``Artifact.SWEEP_SPEC``."""
    mlflow_client = client(tracking_uri)
    if resume:
        existing = find_runs(tracking_uri, experiment_id, parent_filter())
        if existing:
            run_id = max(existing, key=lambda r: r.info.start_time or 0).info.run_id
            mlflow_client.update_run(run_id, status=MlflowStatus.RUNNING)
            mlflow_client.set_tag(run_id, Tag.STATUS, Status.RUNNING)
            return run_id
    run = mlflow_client.create_run(experiment_id, run_name=name, tags={
        Tag.ROLE: Role.SWEEP, Tag.REGIME: regime, Tag.STATUS: Status.RUNNING})
    run_id = run.info.run_id
    _log_params(mlflow_client, run_id, params or {}, "log spec")
    if spec_json is not None:
        RunLogger(tracking_uri, run_id).log_json(scrub_nested(spec_json), Artifact.SWEEP_SPEC)
    return run_id


def log_base(tracking_uri: str, run_id: str, metrics: Mapping[str, float], eval_json: dict) -> None:
    """The base model's eval on the parent run: ``<m>_base`` at step 0 and ``Artifact.BASE_EVAL``."""
    logger = RunLogger(tracking_uri, run_id)
    logger.log_metrics({base_metric(k): v for k, v in metrics.items()}, step=0)
    logger.log_json(eval_json, Artifact.BASE_EVAL)


def child_run(tracking_uri: str, experiment_id: str, parent_id: str, *, key: str, family: str, regime: str,
              params: Mapping[str, Any] | None = None) -> str:
    """The trial's run: found by its key under the parent (resume, retry: set RUNNING again)
    or created nested under it with its tags and ``params``."""
    mlflow_client = client(tracking_uri)
    existing = find_trial_runs(tracking_uri, experiment_id, parent_id, key)
    if existing:
        run_id = existing[0].info.run_id
        mlflow_client.update_run(run_id, status=MlflowStatus.RUNNING)
        mlflow_client.set_tag(run_id, Tag.STATUS, Status.RUNNING)
        return run_id
    tags = {Tag.PARENT: parent_id, Tag.ROLE: Role.TRIAL, Tag.TRIAL_KEY: key, Tag.FAMILY: family,
            Tag.REGIME: regime, Tag.STATUS: Status.RUNNING}
    run = mlflow_client.create_run(experiment_id, run_name=key, tags=tags)
    _log_params(mlflow_client, run.info.run_id, params or {}, "log trial params")
    return run.info.run_id


# The training loop's writers take its ``RunLogger`` (a benchmark passes a stand-in with the
# same methods, which records what the loop logs).

def log_trainable_params(logger: RunLogger, trainable_params: int, trainable_fraction: float) -> None:
    """The model's trainable parameter count and fraction, once, at step 0 (no tokens yet)."""
    logger.log_metrics({Metric.TRAINABLE_PARAMS: trainable_params, Metric.TRAINABLE_FRACTION: trainable_fraction,
                        Metric.TOKENS: 0}, step=0)


def log_training(logger: RunLogger, *, step: int, tokens: int, train_loss: float, lr: float,
                 tokens_per_s: float) -> None:
    """One training report at optimizer step ``step``, with the ``tokens`` seen by then as
    ``Metric.TOKENS``."""
    logger.log_metrics({Metric.TRAIN_LOSS: train_loss, Metric.LR: lr, Metric.TOKENS_PER_S: tokens_per_s,
                        Metric.TOKENS: tokens}, step=step)


def log_milestone(logger: RunLogger, *, step: int, tokens: int, metrics: Mapping[str, float],
                  eval_json: dict) -> None:
    """One eval milestone at optimizer step ``step`` (``tokens`` seen): ``metrics``
    (``MilestoneEvaluator.compare``'s: the primary pair, every ``<m>``, ``<m>_delta``,
    ``<m>_delta_se``; non-finite values are dropped) at that step and the EvalResult JSON as
    ``Artifact.milestone_eval(tokens)``. ``Metric.TOKENS`` at that step is ``log_training``'s,
    which the loop calls at every milestone step: the UI pairs a chart's x-axis metric with
    its y values by position after sorting, so a second ``tokens`` value at one step shifts
    every later point. The primary pair is logged first: a store that lists a run's metrics
    in the order they were first logged (sqlite) shows them above the eval metrics on the run
    page. They go under their ``mlflow_key`` (``Headline/learning``, ...)."""
    primary = [m for name in Metric.PRIMARY for m in (name, se_metric(name)) if m in metrics]
    ordered = {**{name: metrics[name] for name in primary}, **metrics}
    logger.log_metrics({mlflow_key(name): value for name, value in ordered.items()}, step=step)
    logger.log_json(eval_json, Artifact.milestone_eval(tokens))


def log_adapter(tracking_uri: str, run_id: str, folder: str | os.PathLike) -> None:
    """The LoRA adapter folder (peft format) as ``Artifact.ADAPTER``, replacing an earlier one."""
    with_retries(lambda: client(tracking_uri).log_artifacts(run_id, str(folder), artifact_path=Artifact.ADAPTER),
                 "log adapter")


def log_eval_data(tracking_uri: str, parent_id: str, heldout, general) -> None:
    """The sweep's held-out and general-text TokenBlocks on the parent run (``Artifact.HELDOUT_DATA``,
    ``Artifact.GENERAL_DATA``), so ``lfl-ray eval --adapter`` measures a trial on the same rows."""
    import tempfile

    mlflow_client = client(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        for blocks, path in ((heldout, Artifact.HELDOUT_DATA), (general, Artifact.GENERAL_DATA)):
            if blocks is None:
                continue
            folder, name = os.path.split(path)
            blocks.save(Path(tmp) / name)
            with_retries(lambda: mlflow_client.log_artifact(parent_id, str(Path(tmp) / name), folder),
                         f"log {path}")


@dataclass(frozen=True)
class DatasetFacts:
    """One dataset a trial trains on or is measured on, as ``log_datasets`` records it."""

    name: str
    """``<data>-train``, ``<data>-heldout`` (``<data>``: the regime or the study's data name),
    ``general-text``."""
    digest: str
    """16 hex digits of sha256 over the token rows: equal digests, equal rows."""
    source: str
    """Where the rows came from: a local path, a hub dataset id, or ``offline:<regime>``."""
    source_type: str
    """MLflow's source kind: ``local`` (a path), ``hugging_face`` (a hub id), ``code`` (built
    offline from packages)."""
    rows: int
    """Rows of ``seq_len`` tokens."""
    tokens: int
    """Tokens (padding left out)."""
    loss_tokens: int
    """Tokens that carry loss (a prompt's tokens do not)."""
    context: str
    """What the trial used it for: one of ``DatasetContext``."""
    documents: int | None = None
    """Source documents the rows come from (None where not counted)."""


class DatasetContext:
    """Values of MLflow's ``mlflow.data.context`` input tag (the UI shows it beside the name)."""

    TRAINING = "training"
    HELDOUT = "heldout"
    """Measures learning (``heldout_loss``)."""
    GENERAL = "general"
    """Measures forgetting (``general_loss``, ``drift``)."""


def log_datasets(tracking_uri: str, run_id: str, datasets) -> None:
    """``log_input`` of each ``DatasetFacts`` on the run (the run page's Datasets), leaving out
    those it has already (a resumed or retried trial logs no duplicate)."""
    import json

    from mlflow.entities import Dataset, DatasetInput, InputTag

    mlflow_client = client(tracking_uri)
    run = with_retries(lambda: mlflow_client.get_run(run_id), "read run inputs")
    logged = {(i.dataset.name, i.dataset.digest) for i in (run.inputs.dataset_inputs if run.inputs else [])}
    inputs = []
    for d in datasets:
        if (d.name, d.digest) in logged:
            continue
        profile = {"num_rows": d.rows, "num_tokens": d.tokens, "num_loss_tokens": d.loss_tokens}
        if d.documents is not None:
            profile["num_documents"] = d.documents
        # The UI reads a hub dataset's id from "path" and a local one's from "uri".
        source = {"path" if d.source_type == "hugging_face" else "uri": d.source}
        schema = {"mlflow_colspec": [{"name": c, "type": "long"} for c in ("input_ids", "labels", "attention_mask")]}
        inputs.append(DatasetInput(Dataset(name=d.name, digest=d.digest, source_type=d.source_type,
                                           source=json.dumps(source), schema=json.dumps(schema),
                                           profile=json.dumps(profile)),
                                   tags=[InputTag("mlflow.data.context", d.context)]))
    if inputs:
        with_retries(lambda: mlflow_client.log_inputs(run_id, datasets=inputs), "log datasets")


def set_checkpoint(tracking_uri: str, run_id: str, folder: str) -> None:
    """Record the trial's latest checkpoint folder."""
    with_retries(lambda: client(tracking_uri).set_tag(run_id, Tag.CHECKPOINT, str(folder)), "set checkpoint")


def record_error(tracking_uri: str, run_id: str, text: str) -> None:
    """Keep the end of an error's text on the run (its status is set when it ends)."""
    with_retries(lambda: client(tracking_uri).set_tag(run_id, Tag.ERROR, text[-ERROR_CHARS:]), "record error")


def clear_error(tracking_uri: str, run_id: str) -> None:
    """Drop a recorded error (a scheduler stop or Ctrl-C that broke the run is no failure)."""
    with_retries(lambda: client(tracking_uri).delete_tag(run_id, Tag.ERROR), "clear error")


def log_analysis(tracking_uri: str, parent_id: str, folder: str | os.PathLike) -> None:
    """Log the files of an analysis output folder on the sweep's parent run (``Artifact.ANALYSIS``)."""
    with_retries(lambda: client(tracking_uri).log_artifacts(parent_id, str(folder), artifact_path=Artifact.ANALYSIS),
                 "log analysis")


def end_run(tracking_uri: str, run_id: str, status: str, *, error: str | None = None) -> None:
    """End a run with ``status`` (a ``Status``: ``Tag.STATUS`` gets it, MLflow's status follows
    ``MLFLOW_STATUS_OF``), and the error text when there is one."""
    if status not in MLFLOW_STATUS_OF:
        raise ValueError(f"end_run: status {status!r} must be one of {sorted(MLFLOW_STATUS_OF)}")
    lfl_status, status = status, MLFLOW_STATUS_OF[status]
    mlflow_client = client(tracking_uri)
    if error:
        record_error(tracking_uri, run_id, error)
    with_retries(lambda: mlflow_client.set_tag(run_id, Tag.STATUS, lfl_status or status), "set status")
    with_retries(lambda: mlflow_client.set_terminated(run_id, status=status), "end run")
