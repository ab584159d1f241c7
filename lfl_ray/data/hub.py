"""Hub sources: the paper's Hugging Face datasets, loaded with ``datasets.load_dataset``.

Each regime names its own ``HubSource`` values (``Regime.hub`` in ``lfl_ray.data.regimes``,
where the table of datasets is); this module only knows how to read them. The split unit of
a source is its ``group`` column (MetaMathQA: the original question, since it rewrites each
GSM8K/MATH train question several ways; starcoderdata: the repository; open-web-math: the
URL). starcoderdata is gated: it needs an HF token after accepting its terms.

``DataSpec.hub_dataset`` replaces the dataset id, e.g. with a local directory in the same
format (JSON/Parquet files that ``load_dataset`` reads, or a ``save_to_disk`` folder).
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, replace
from pathlib import Path

from lfl_ray.data.records import Document, Example
from lfl_ray.errors import AssetMissingError, ConfigError


@dataclass(frozen=True)
class HubSource:
    """One hub dataset and the columns a regime reads from it."""

    label: str
    """Short source name used in doc ids and stats."""
    dataset: str
    """Hub id (or a local directory)."""
    split: str = "train"
    """Split to read."""
    data_dir: str | None = None
    """Sub-folder of the repository (starcoderdata's ``python``)."""
    instruction: str | None = None
    """IFT: column of the user turn."""
    response: str | None = None
    """IFT: column of the assistant turn."""
    text: str | None = None
    """CPT/general: column of the text."""
    group: str | None = None
    """Column naming the split unit; absent: each record is its own unit."""
    streaming: bool = False
    """Stream instead of downloading the whole split (the CPT corpora)."""
    gated: bool = False
    """Needs an accepted licence and an HF token."""

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c for c in (self.instruction, self.response, self.text) if c)


def hub_sources(sources: tuple[HubSource, ...], override: str | None) -> tuple[HubSource, ...]:
    """A regime's hub sources; an override replaces the (first) dataset id."""
    if override is None:
        return sources
    first = sources[0]
    data_dir = first.data_dir
    local = Path(override).expanduser()
    if local.is_dir():
        override = str(local.resolve())
        if data_dir and not (local / data_dir).is_dir():
            data_dir = None
    return (replace(first, dataset=override, data_dir=data_dir),)


def _hub_error(source: HubSource, exc: Exception) -> AssetMissingError:
    fix = "use source='offline' (the default, no network needed), or run where the Hugging Face hub is reachable"
    if source.gated:
        fix += (f"; {source.dataset} is gated: accept its terms on huggingface.co/datasets/"
                f"{source.dataset} and set HF_TOKEN (or run `hf auth login`)")
    return AssetMissingError(f"hub dataset {source.dataset!r}",
                             f"datasets.load_dataset: {type(exc).__name__}: {str(exc)[:300]}", fix=fix)


def _open(source: HubSource, seed: int, max_docs: int, cache_dir: Path):
    """An iterable of records (dicts), at most ``max_docs`` of them."""
    import datasets

    local = Path(source.dataset)
    if local.is_dir() and ((local / "state.json").exists() or (local / "dataset_dict.json").exists()):
        data = datasets.load_from_disk(str(local))
        if isinstance(data, datasets.DatasetDict):
            data = data[source.split]
    else:
        data = datasets.load_dataset(source.dataset, data_dir=source.data_dir, split=source.split,
                                     streaming=source.streaming, cache_dir=str(cache_dir))
    if isinstance(data, datasets.IterableDataset):
        return data.column_names, itertools.islice(data, max_docs)
    if len(data) > max_docs:
        data = data.shuffle(seed=seed).select(range(max_docs))
    return data.column_names, iter(data)


def _group(source: HubSource, record: dict, index: int) -> str:
    value = record.get(source.group) if source.group else None
    if value is None or value == "":
        return f"{source.label}/{index}"
    return f"{source.label}/{hashlib.sha1(str(value).encode()).hexdigest()[:12]}"


def hub_records(sources: tuple[HubSource, ...], kind: str, *, override: str | None, seed: int,
                max_docs: int, cache_dir: Path, log=print) -> list[Example | Document]:
    """Examples (``kind == "ift"``) or documents read from a regime's hub sources."""
    from lfl_ray.progress import progress

    records: list[Example | Document] = []
    for source in hub_sources(sources, override):
        log(f"[data] reading {source.dataset} (split {source.split}, at most {max_docs} records)")
        try:
            columns, rows = _open(source, seed, max_docs, cache_dir)
            if columns is not None:
                missing = [c for c in source.columns if c not in columns]
                if missing:
                    raise ConfigError("hub_dataset", source.dataset,
                                      f"must have columns {list(source.columns)}; it has {list(columns)}")
            for index, row in enumerate(progress(rows, desc=source.label, total=max_docs, unit="row")):
                doc_id = _group(source, row, index)
                if kind == "ift":
                    instruction, response = row[source.instruction], row[source.response]
                    if instruction and response:
                        records.append(Example(doc_id, source.label, str(instruction).strip(),
                                               str(response).strip()))
                elif row[source.text] and str(row[source.text]).strip():
                    records.append(Document(doc_id, source.label, str(row[source.text]).strip()))
        except (ConfigError, AssetMissingError):
            raise
        except KeyError as exc:  # a streamed dataset only shows its columns row by row
            raise ConfigError("hub_dataset", source.dataset,
                              f"must have columns {list(source.columns)}; a record lacks {exc}") from exc
        except Exception as exc:  # network, auth, missing repo: all say "use offline"
            raise _hub_error(source, exc) from exc
    return records
