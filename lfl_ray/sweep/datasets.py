"""The datasets every trial of a sweep logs as its MLflow inputs: what it trains on (the
regime's or the study's training rows) and what it is measured on (held-out rows for
``learning``, general text for ``forgetting``).

The driver builds them once from the data it has in memory (``data.facts.dataset_facts``),
and each trial's run logs them when it starts (``mlflow_schema.log_datasets``).
"""

from __future__ import annotations

from pathlib import Path

from lfl_ray.data.blocks import TokenBlocks
from lfl_ray.data.facts import blocks_digest, dataset_facts
from lfl_ray.data.spec import DataSpec
from lfl_ray.mlflow_schema import DatasetContext, DatasetFacts


def source_of(spec: DataSpec) -> tuple[str, str]:
    """(source, MLflow source type) of a DataSpec's rows: a local path, a hub id, or the
    offline builder of a regime."""
    if spec.custom is not None:
        if spec.custom.hub:
            return spec.custom.hub, "hugging_face"
        return str(Path(spec.custom.path).expanduser().resolve()), "local"
    if spec.hub_dataset:
        local = Path(spec.hub_dataset).expanduser()
        return (str(local.resolve()), "local") if local.exists() else (spec.hub_dataset, "hugging_face")
    if spec.source == "hub":
        from lfl_ray.data.regimes import get_regime

        names = ",".join(source.dataset for source in get_regime(spec.regime).hub)
        return names or f"hub:{spec.regime}", "hugging_face"
    return f"offline:{spec.regime}", "code"


def sweep_datasets(spec: DataSpec, regime, general: TokenBlocks | None) -> tuple[DatasetFacts, ...]:
    """The training, held-out and general-text datasets of a sweep's trials; ``regime`` is
    the built regime (``load_regime(spec)``), ``general`` the general-text rows (or None)."""
    source, source_type = source_of(spec)
    facts = dataset_facts(spec, regime)
    out = [DatasetFacts(name=f["name"], digest=f["digest"], source=source, source_type=source_type,
                        rows=f["rows"], tokens=f["tokens"], loss_tokens=f["loss_tokens"], context=context,
                        documents=f.get("documents"))
           for f, context in ((facts["train"], DatasetContext.TRAINING), (facts["heldout"], DatasetContext.HELDOUT))]
    if general is not None:
        out.append(DatasetFacts(name="general-text", digest=blocks_digest(general),
                                source="offline:general", source_type="code",  # always offline (LAMBADA, BoolQ)
                                rows=len(general), tokens=int(general.attention_mask.sum()),
                                loss_tokens=general.loss_tokens, context=DatasetContext.GENERAL,
                                documents=len(set(general.doc_ids))))
    return tuple(out)


def blocks_datasets(train: TokenBlocks, name: str = "given") -> tuple[DatasetFacts, ...]:
    """The training dataset of a sweep given its TokenBlocks directly (tests, benchmarks)."""
    return (DatasetFacts(name=f"{name}-train", digest=blocks_digest(train), source="TokenBlocks given to run_sweep",
                         source_type="code", rows=len(train), tokens=int(train.attention_mask.sum()),
                         loss_tokens=train.loss_tokens, context=DatasetContext.TRAINING,
                         documents=len(set(train.doc_ids))),)
