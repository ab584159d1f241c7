"""load_regime: a regime's train and held-out TokenBlocks, built once and cached on disk.

Build order (so a capped CPU preset builds in seconds): read the regime's records (text
only), draw held-out documents and tokenize only those, then tokenize training records
in a seeded order only until ``max_train_blocks`` rows are full. The held-out set depends
on (seed, heldout_blocks, heldout_doc_cap, seq_len, tokenizer) only, never on the train
cap, so presets with different budgets share it.

Cache: ``<data cache>/<regime>-<source>-<hash>/`` with ``train.pt``, ``heldout.pt`` and
``stats.json``; the hash covers the spec, the asset versions, the Python version (stdlib
corpora), the installed math docs and local hub files. The data cache is
``$LFL_RAY_DATA_CACHE`` or ``<lfl_ray cache>/data``: separately overridable, because the
assets and the tokenizer stay in the main cache.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from lfl_ray.cache import data_cache_root
from lfl_ray.data.blocks import TokenBlocks
from lfl_ray.data.formatting import (Packer, Row, document_windows, pack_stream, passage_row,
                                     to_blocks, tokenize_documents, tokenize_examples)
from lfl_ray.data.records import Document, Example
from lfl_ray.data.regimes import fingerprint, get_regime
from lfl_ray.data.spec import DataSpec
from lfl_ray.data.split import group_by_document, heldout_order, train_order
from lfl_ray.errors import ConfigError

FORMAT_VERSION = 1
"""Bump when the build changes what it writes, so old cache entries are not reused."""
MAX_HELDOUT_SHARE = 0.5
"""The held-out set never takes more than this share of a regime's documents."""
GIVE_UP_AFTER = 200
"""Documents tried for held-out rows before deciding that seq_len fits none."""
CHUNK = 256
SAMPLE_CHARS = 600


@dataclass
class RegimeData:
    """A regime's token blocks: what to train on, what to measure learning on, and facts."""

    train: TokenBlocks
    """Training rows (never overlapping held-out documents)."""
    heldout: TokenBlocks
    """Held-out rows for the learning loss (one document per row)."""
    stats: dict = field(default_factory=dict)
    """Examples, rows, tokens and documents per split, sources, notes, flags, a sample."""


def cache_key(spec: DataSpec) -> str:
    """Hash of everything that decides the build."""
    facts = {"format": FORMAT_VERSION, **fingerprint(spec)}
    return hashlib.sha256(json.dumps(facts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cache_folder(spec: DataSpec) -> Path:
    """The cache folder of ``spec`` (may not exist yet)."""
    if spec.custom is not None:
        return data_cache_root() / f"{spec.regime}-{spec.custom.label}-{cache_key(spec)}"
    return data_cache_root() / f"{spec.regime}-{spec.source}-{cache_key(spec)}"


def load_regime(spec: DataSpec, *, log=print) -> RegimeData:
    """Train and held-out blocks of ``spec``: from the cache, else built (then cached)."""
    spec.validate()
    folder = cache_folder(spec)
    if (folder / "stats.json").exists():
        return RegimeData(TokenBlocks.load(folder / "train.pt"), TokenBlocks.load(folder / "heldout.pt"),
                          json.loads((folder / "stats.json").read_text()))
    data = build_regime(spec, log=log)
    _save(folder, data)
    log(f"[data] {spec.regime}: cached at {folder}")
    return data


def general_text(spec: DataSpec, *, rows: int | None = None) -> TokenBlocks:
    """Held-out general English rows (LAMBADA + BoolQ passages), the spec's tokenizer and
    seq_len, fixed by seed; ``rows`` overrides ``spec.heldout_blocks``. Always offline."""
    general = replace(spec, regime="general", source="offline", hub_dataset=None, custom=None,
                      decontaminate=(), max_train_blocks=1,
                      pack=True, heldout_doc_cap=1, heldout_blocks=rows or spec.heldout_blocks)
    return load_regime(general, log=lambda *_: None).heldout


def _save(folder: Path, data: RegimeData) -> None:
    staging = folder.with_name(f"{folder.name}.{os.getpid()}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    data.train.save(staging / "train.pt")
    data.heldout.save(staging / "heldout.pt")
    (staging / "stats.json").write_text(json.dumps(data.stats, indent=1, default=str))
    try:
        os.replace(staging, folder)
    except OSError:  # another process finished the same build first: keep theirs
        shutil.rmtree(staging, ignore_errors=True)


def _records(spec: DataSpec, log) -> tuple[list[Example | Document], dict]:
    """The regime's records from ``spec.source`` and facts for the stats (``notes`` first)."""
    if spec.custom is not None:
        return _custom_records(spec, log)
    regime = get_regime(spec.regime)
    if spec.source == "offline":
        records, facts = regime.offline(spec, log)
        return list(records), {"notes": list(facts.get("notes", ())),
                               **{k: v for k, v in facts.items() if k != "notes"}}
    from lfl_ray.data.hub import hub_records

    records = hub_records(regime.hub, regime.kind, override=spec.hub_dataset, seed=spec.seed,
                          max_docs=spec.hub_max_docs, cache_dir=data_cache_root() / "hf", log=log)
    return records, {"notes": [], "hub_dataset": spec.hub_dataset}


def _custom_records(spec: DataSpec, log) -> tuple[list, dict]:
    """A study's own records, decontaminated against the study's eval suites."""
    from lfl_ray.data.custom import read_records
    from lfl_ray.data.eval_overlap import decontaminate

    records, facts = read_records(spec.custom, seed=spec.seed, cache_dir=data_cache_root() / "hf", log=log)
    notes = []
    if spec.custom.decontaminate and spec.decontaminate:
        before = len(records)
        records, overlap = decontaminate(records, spec.decontaminate, log=log)
        facts["decontamination"] = overlap
        if overlap["dropped"]:
            notes.append(f"decontamination: dropped {overlap['dropped']} of {before} records sharing a "
                         f"{overlap['ngram']}-word run with items of {overlap['by_suite']}")
        if overlap.get("not_checked"):
            notes.append(f"decontamination: suites {overlap['not_checked']} are not checked")
        if not records:
            raise ConfigError("data.decontaminate", True, f"leaves no record: all {before} overlap the eval "
                              f"suites {overlap['suites']}", hint="the data copies the evals; set "
                              "data.decontaminate: false only if you mean to train on them")
    return records, {"notes": notes, **facts}


class _Rows:
    """Turns the records of one regime kind into row candidates, batch by batch."""

    def __init__(self, kind: str, tokenizer, seq_len: int, counts: Counter):
        self.kind, self.tokenizer, self.seq_len, self.counts = kind, tokenizer, seq_len, counts

    def ift_or_passages(self, records: list) -> list[Row | None]:
        """One row (or None: dropped) per IFT example or general passage."""
        if self.kind == "ift":
            return tokenize_examples(records, self.tokenizer, self.seq_len, self.counts)
        return [passage_row(ids, doc, self.seq_len)
                for doc, ids in zip(records, tokenize_documents(records, self.tokenizer))]

    def document_ids(self, docs: list[Document]) -> list[list[int]]:
        """CPT: each document's ids followed by EOS."""
        return [ids + [self.tokenizer.eos_token_id] for ids in tokenize_documents(docs, self.tokenizer)]


def _heldout(groups: dict, spec: DataSpec, rows_of: _Rows, log) -> tuple[list[Row], list[str]]:
    """Held-out rows and documents: drawn round-robin over sources, ``heldout_doc_cap`` per doc."""
    order = heldout_order(groups, spec.seed)
    limit = max(1, int(len(order) * MAX_HELDOUT_SHARE))
    cap = spec.heldout_doc_cap
    rows: list[Row] = []
    docs: list[str] = []
    for tried, doc_id in enumerate(order):
        if len(rows) >= spec.heldout_blocks or len(docs) >= limit:
            break
        if tried >= GIVE_UP_AFTER and not rows:
            raise ConfigError("seq_len", spec.seq_len, f"too small for any {spec.regime} example: none of "
                              f"{tried} documents gives a row", hint=f"dropped: {dict(rows_of.counts)}")
        if rows_of.kind == "cpt":
            doc_rows = []
            for doc, ids in zip(groups[doc_id], rows_of.document_ids(groups[doc_id])):
                doc_rows += document_windows(ids, doc, spec.seq_len, cap)
        else:
            doc_rows = [r for r in rows_of.ift_or_passages(groups[doc_id][:cap]) if r]
        doc_rows = doc_rows[: min(cap, spec.heldout_blocks - len(rows))]
        if doc_rows:
            rows += doc_rows
            docs.append(doc_id)
    if len(rows) < spec.heldout_blocks:
        log(f"[data] note: only {len(rows)} held-out rows (asked {spec.heldout_blocks}; "
            f"{len(order)} documents, at most {MAX_HELDOUT_SHARE:.0%} of them held out)")
    return rows, docs


def _train(groups: dict, heldout_docs: set[str], spec: DataSpec, rows_of: _Rows) -> list[Row]:
    """Training rows from every other document, in a seeded order, tokenized up to the cap."""
    from lfl_ray.progress import progress

    cap = spec.max_train_blocks
    items = train_order([r for doc_id, recs in groups.items() if doc_id not in heldout_docs for r in recs],
                        spec.seed)
    packer = Packer(spec.seq_len)
    rows: list[Row] = []
    token_lists: list[list[int]] = []
    n_tokens = 0
    chunk = 16 if rows_of.kind == "cpt" else CHUNK
    with progress(total=len(items), desc=f"{spec.regime} train", unit="rec") as bar:
        for start in range(0, len(items), chunk):
            batch = items[start:start + chunk]
            if rows_of.kind == "cpt":
                for ids in rows_of.document_ids(batch):
                    token_lists.append(ids)
                    n_tokens += len(ids)
                done = n_tokens // spec.seq_len
            else:
                for row in rows_of.ift_or_passages(batch):
                    if row is None:
                        continue
                    if rows_of.kind == "ift" and spec.pack:
                        packer.add(row)
                    else:
                        rows.append(row)
                done = len(packer.rows) if rows_of.kind == "ift" and spec.pack else len(rows)
            bar.update(len(batch))
            if cap is not None and done >= cap:
                break
    if rows_of.kind == "cpt":
        rows = pack_stream(token_lists, items[:len(token_lists)], spec.seq_len)
    elif rows_of.kind == "ift" and spec.pack:
        packer.flush()
        rows = packer.rows
    return rows[:cap] if cap is not None else rows


def _split_stats(kind: str, rows: list[Row], blocks: TokenBlocks) -> dict:
    members = [m for row in rows for m in row.members]
    if kind == "cpt":  # a document spans many blocks: count it once
        members = list(dict.fromkeys(members))
    return {"rows": len(blocks), "examples": len(members), "tokens": int(blocks.attention_mask.sum()),
            "loss_tokens": blocks.loss_tokens, "documents": len({d for d, _ in members}),
            "sources": dict(sorted(Counter(s for _, s in members).items()))}


@functools.lru_cache(maxsize=4)
def _tokenizer(model: str):
    """The tokenizer of ``model``, loaded once per process (it takes seconds)."""
    from lfl_ray.models import load_tokenizer

    return load_tokenizer(model)


def build_regime(spec: DataSpec, *, log=print) -> RegimeData:
    """Build (no cache) the train and held-out blocks of ``spec``."""
    spec.validate()
    started = time.perf_counter()
    kind = spec.kind
    records, info = _records(spec, log)
    if not records:
        raise ConfigError("hub_dataset" if spec.source == "hub" else "regime",
                          spec.hub_dataset or spec.regime, "must yield at least one record; got none")
    tokenizer = _tokenizer(spec.model)
    groups = group_by_document(records)
    origin = spec.custom.source if spec.custom else spec.source
    log(f"[data] {spec.regime} ({origin}): {len(records)} records in {len(groups)} documents")
    counts: Counter = Counter()
    rows_of = _Rows(kind, tokenizer, spec.seq_len, counts)
    held_rows, held_docs = _heldout(groups, spec, rows_of, log)
    train_rows = _train(groups, set(held_docs), spec, rows_of)
    if not train_rows or not held_rows:
        if spec.custom is not None and len(groups) < 2:
            raise ConfigError("data.path", spec.custom.path or spec.custom.hub, "must hold at least 2 "
                              f"documents (one held out, one to train on); it has {len(groups)}",
                              hint="split a long text into several files, or leave data.document_field out")
        raise ConfigError("seq_len", spec.seq_len,
                          f"too small for any {spec.regime} example: no "
                          f"{'train' if not train_rows else 'held-out'} rows could be built",
                          hint=f"dropped: {dict(counts)}")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    train = to_blocks(train_rows, spec.seq_len, pad_id)
    heldout = to_blocks(held_rows, spec.seq_len, pad_id)
    stats = {
        "regime": spec.regime, "source": spec.custom.source if spec.custom else spec.source, "kind": kind,
        "model": spec.model,
        "seq_len": spec.seq_len, "seed": spec.seed, "packed": kind == "ift" and spec.pack,
        "records": len(records), "documents_available": len(groups),
        "train": _split_stats(kind, train_rows, train),
        "heldout": _split_stats(kind, held_rows, heldout),
        "length_rule": dict(sorted(counts.items())), **info,
        "build_seconds": round(time.perf_counter() - started, 2),
        "sample": _sample(train, tokenizer),
    }
    if stats["packed"]:
        stats["notes"].append("packed: several examples per row by plain concatenation; on the HF "
                              "CPU path attention is not kept inside each example")
    for source in sorted({k.split("/", 1)[1] for k in counts if k.startswith("seen/")}):
        dropped = counts[f"dropped_long_prompt/{source}"] / counts[f"seen/{source}"]
        if dropped > 0.5:
            note = (f"{source}: {dropped:.0%} of the examples tokenized were dropped (prompt longer "
                    f"than seq_len/2 = {spec.seq_len // 2}); a larger seq_len keeps more of them")
            stats["notes"].append(note)
            log(f"[data] note: {note}")
    if spec.custom is not None:
        _length_warning(stats, counts, spec, log)
    overlap = {d for r in train_rows for d, _ in r.members} & set(held_docs)
    if overlap:  # cannot happen by construction; a regression here would poison every eval
        raise RuntimeError(f"train and held-out share documents: {sorted(overlap)[:5]}")
    log(f"[data] {spec.regime}: train {len(train)} rows / {stats['train']['tokens']} tokens, "
        f"held-out {len(heldout)} rows from {stats['heldout']['documents']} documents "
        f"({stats['build_seconds']} s)")
    return RegimeData(train, heldout, stats)


def _length_warning(stats: dict, counts: Counter, spec: DataSpec, log) -> None:
    """Say how many of the user's examples seq_len cut or dropped (of those tokenized)."""
    seen = sum(v for k, v in counts.items() if k.startswith("seen/"))
    cut = sum(v for k, v in counts.items() if k.startswith("truncated/"))
    dropped = sum(v for k, v in counts.items() if k.startswith("dropped_long_prompt/"))
    if cut or dropped:
        note = (f"warning: of {seen} examples tokenized, {cut} were longer than seq_len {spec.seq_len} and cut "
                f"(their responses lose the tail), {dropped} dropped (prompt longer than seq_len/2); "
                "a larger budget.seq_len keeps them whole")
        stats["notes"].append(note)
        log(f"[data] {note}")


def _sample(blocks: TokenBlocks, tokenizer) -> dict:
    """The first train row as text, and the part of it that carries loss."""
    from lfl_ray.data.blocks import IGNORE_INDEX

    ids = blocks.input_ids[0][blocks.attention_mask[0].bool()].tolist()
    labels = blocks.labels[0]
    loss_ids = blocks.input_ids[0][labels != IGNORE_INDEX].tolist()
    return {"doc_id": blocks.doc_ids[0], "text": tokenizer.decode(ids)[:SAMPLE_CHARS],
            "loss_text": tokenizer.decode(loss_ids)[:SAMPLE_CHARS]}
