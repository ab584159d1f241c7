"""A sweep's trial fetched back from MLflow, to evaluate it again: ``lfl-ray eval --adapter RUN_ID``.

From the trial's run: the model it trained (param ``model``, and ``seed``, which builds the
tiny test model), its weights (a LoRA run's ``adapter/`` artifact, downloaded; a full-FT
run's checkpoint folder named by ``lfl.checkpoint``) and the metrics it logged. From its
parent run: the held-out and general-text rows every trial was measured on and the sweep's
eval settings, so the loss suites measure exactly what the run logged.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from lfl_ray import mlflow_schema as schema
from lfl_ray.errors import ConfigError
from lfl_ray.mlflow_schema import Artifact, Method, Param, Role, Tag

RUN_ID = re.compile(r"[0-9a-f]{32}")
"""What an MLflow run id looks like (32 hex digits)."""


def is_run_id(text: str | None) -> bool:
    """Whether ``text`` reads as an MLflow run id rather than a folder."""
    return bool(text) and RUN_ID.fullmatch(text) is not None and not Path(text).exists()


@dataclass(frozen=True)
class LoggedTrial:
    """What ``fetch_trial`` brought back."""

    run_id: str
    key: str
    """The trial's key (its run name)."""
    model: str
    """The base model the trial trained (a built-in alias, a folder or a hub id)."""
    seed: int
    """The trial's seed (it builds the tiny random test model)."""
    method: str
    """``Method.LORA`` or ``Method.FULL``."""
    adapter: str | None
    """LoRA: the downloaded peft adapter folder."""
    weights: str | None
    """Full finetuning: the checkpoint's Hugging Face model folder."""
    heldout: str | None
    """The parent run's held-out TokenBlocks file (None for sweeps that did not log it)."""
    general: str | None
    """The parent run's general-text TokenBlocks file."""
    eval_spec: dict = field(default_factory=dict)
    """The sweep's ``eval`` section (empty: the defaults)."""
    logged: dict = field(default_factory=dict)
    """The run's latest metric values (its last milestone's evals)."""
    tokens: int | None = None
    """Training tokens at the run's last milestone."""


def _error(run_id: str, allowed: str, hint: str | None = None) -> ConfigError:
    return ConfigError("--adapter", run_id, allowed, hint=hint)


def _download(client, run_id: str, path: str, folder: Path) -> str | None:
    """``path`` of run ``run_id`` downloaded under ``folder``; None when the run has none."""
    parent_dir, name = path.rpartition("/")[0], path.rpartition("/")[2]
    listed = {a.path for a in client.list_artifacts(run_id, parent_dir or None)}
    if path not in listed:
        return None
    return client.download_artifacts(run_id, path, str(folder))


def fetch_trial(tracking_uri: str, run_id: str, folder: str | Path) -> LoggedTrial:
    """Fetch trial run ``run_id`` of ``tracking_uri`` into ``folder`` (a ConfigError on
    ``--adapter`` says what is missing)."""
    folder = Path(folder)
    client = schema.client(tracking_uri)
    try:
        run = client.get_run(run_id)
    except Exception as exc:  # noqa: BLE001 - MlflowException, or a store that cannot be read
        raise _error(run_id, f"must be a peft adapter folder or the MLflow run id of a trial in {tracking_uri}",
                     hint=f"no such run: {str(exc).splitlines()[0]}; give --tracking-uri of its sweep") from exc
    tags, params = run.data.tags, run.data.params
    if tags.get(Tag.ROLE) != Role.TRIAL:
        raise _error(run_id, f"must be the run of a trial (tag {Tag.ROLE}={Role.TRIAL}); this run has "
                     f"{Tag.ROLE}={tags.get(Tag.ROLE)!r}")
    model, method = params.get(Param.MODEL), params.get(Param.METHOD)
    if not model or method not in (Method.LORA, Method.FULL):
        raise _error(run_id, f"must be a trial run with params {Param.MODEL!r} and {Param.METHOD!r}")
    adapter = weights = None
    if method == Method.LORA:
        if not client.list_artifacts(run_id, Artifact.ADAPTER):
            raise _error(run_id, f"must be a LoRA trial that logged its adapter ({Artifact.ADAPTER}/ artifact)",
                         hint="a trial logs it at each eval milestone; this one has none yet")
        adapter = client.download_artifacts(run_id, Artifact.ADAPTER, str(folder))
    else:
        checkpoint = tags.get(Tag.CHECKPOINT)
        if not checkpoint:
            raise _error(run_id, f"must be a full-finetuning trial with a checkpoint ({Tag.CHECKPOINT} tag)",
                         hint="full finetuning logs no weights to MLflow; this run saved none yet")
        if "://" in checkpoint:
            raise _error(run_id, f"must have its checkpoint on this machine; it is in {checkpoint}",
                         hint="copy the checkpoint's model/ folder here and give it as --model, with --suite")
        # A trial checkpoint holds the Hugging Face model folder under model/ (train.checkpoint).
        found = [c for c in (Path(checkpoint) / "model", Path(checkpoint)) if (c / "config.json").exists()]
        if not found:
            raise _error(run_id, f"must have a readable checkpoint: no model folder with config.json in {checkpoint}")
        weights = str(found[0])
    parent = tags.get(Tag.PARENT)
    heldout = general = None
    eval_spec: dict = {}
    if parent:
        heldout = _download(client, parent, Artifact.HELDOUT_DATA, folder)
        general = _download(client, parent, Artifact.GENERAL_DATA, folder)
        spec_file = _download(client, parent, Artifact.SWEEP_SPEC, folder)
        if spec_file:
            eval_spec = json.loads(Path(spec_file).read_text()).get("eval") or {}
    learning_steps = [m.step for m in schema.learning_history(client, run_id)]
    tokens = schema.step_tokens(client, run_id)(max(learning_steps)) if learning_steps else None
    return LoggedTrial(run_id=run_id, key=tags.get(Tag.TRIAL_KEY, run.info.run_name), model=model,
                       seed=int(params.get(Param.SEED, 0)), method=method, adapter=adapter, weights=weights,
                       heldout=heldout, general=general, eval_spec=eval_spec, logged=schema.metrics_by_name(run.data.metrics),
                       tokens=tokens)
