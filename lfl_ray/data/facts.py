"""What a built dataset is, in two forms: facts for MLflow (``dataset_facts``) and the text
``lfl-ray data stats`` and a sweep's preflight print (``stats_text``)."""

from __future__ import annotations

import hashlib

from lfl_ray.data.blocks import TokenBlocks
from lfl_ray.data.spec import DataSpec


def blocks_digest(blocks: TokenBlocks) -> str:
    """sha256 (16 hex digits) of the rows' ids, labels and attention: what is trained or scored."""
    digest = hashlib.sha256()
    for tensor in (blocks.input_ids, blocks.labels, blocks.attention_mask):
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def dataset_facts(spec: DataSpec, data) -> dict[str, dict]:
    """The train and held-out datasets of a built regime (``load_regime(spec)``), each as
    ``{name, source, digest, rows, tokens, loss_tokens, documents, examples, source_digest}``:
    what ``mlflow.log_input`` needs (``mlflow.data.from_numpy(..., source=, name=, digest=)``
    or a ``meta_dataset``). ``digest`` hashes the token rows; ``source_digest`` the input
    files (custom data) and is None for the built-in regimes."""
    stats = data.stats
    if spec.custom is not None:
        from lfl_ray.data.custom import content_digest

        label, source, source_digest = spec.custom.label, spec.custom.source, content_digest(spec.custom)
    else:
        label = spec.regime
        source = spec.hub_dataset or (spec.source if spec.source == "offline" else f"hub:{spec.regime}")
        source_digest = None
    out = {}
    for split, blocks in (("train", data.train), ("heldout", data.heldout)):
        split_stats = stats.get(split, {})
        out[split] = {"name": f"{label}-{split}", "source": source, "digest": blocks_digest(blocks),
                      "rows": len(blocks), "tokens": int(blocks.attention_mask.sum()),
                      "loss_tokens": int(blocks.loss_tokens),
                      "documents": split_stats.get("documents"), "examples": split_stats.get("examples"),
                      "seq_len": spec.seq_len, "kind": stats.get("kind"), "source_digest": source_digest}
    return out


def stats_text(stats: dict) -> str:
    """The stats of a build (``RegimeData.stats``) as the lines ``lfl-ray data stats`` prints."""
    lines = [f"{stats['regime']} ({stats['source']}, {stats['kind']}, seq_len {stats['seq_len']}, "
             f"seed {stats['seed']}{', packed' if stats['packed'] else ''})",
             f"  records {stats['records']} in {stats['documents_available']} documents"]
    if "data" in stats:
        d = stats["data"]
        lines.append(f"  data {d['name']!r} ({d['kind']}): read {d['read']} records, kept {d['kept']}"
                     + (f" from {d['files']} files" if "files" in d else "")
                     + ("; fields " + "; ".join(", ".join(f"{k}={v}" for k, v in m.items() if k != "detected")
                                                + (" (detected)" if m.get("detected") else "")
                                                for m in d["fields"]) if d.get("fields") else ""))
        for key in ("skipped_files", "skipped_empty_rows"):
            if key in d:
                lines.append(f"  {key.replace('_', ' ')}: {d[key]}")
    if "decontamination" in stats:
        dc = stats["decontamination"]
        lines.append(f"  decontamination against {dc['suites'] or 'no suite'}: dropped {dc['dropped']}"
                     + (f" {dc['by_suite']}" if dc["by_suite"] else ""))
    for split in ("train", "heldout"):
        s = stats[split]
        lines.append(f"  {split:8s} rows {s['rows']:6d}  examples {s['examples']:6d}  documents "
                     f"{s['documents']:6d}  tokens {s['tokens']:9d}  loss tokens {s['loss_tokens']:9d}  "
                     f"sources {s['sources']}")
    if stats.get("length_rule"):
        lines.append(f"  length rule: {stats['length_rule']}")
    for key in ("python", "math_docs"):
        if key in stats:
            lines.append(f"  {key}: {stats[key]}")
    lines += [f"  note: {note}" for note in stats.get("notes", [])]
    sample = stats["sample"]
    lines.append(f"  sample (first train row, {sample['doc_id']}):\n{_indent(sample['text'])}")
    lines.append(f"  ... of which loss is taken on:\n{_indent(sample['loss_text'])}")
    return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join("    | " + line for line in text.splitlines())
