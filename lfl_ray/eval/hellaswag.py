"""HellaSwag (validation, 10,042 items): pick the ending of an activity description.

Prompts and preprocessing follow lm-evaluation-harness: ``activity_label: ctx_a Ctx_b``
with WikiHow ``[title]`` markers and bracketed tags removed; headline metric acc_norm.
"""

from __future__ import annotations

import re

from lfl_ray.eval.multiple_choice import MCItem
from lfl_ray.eval.sources import hf_rows


def preprocess(text: str) -> str:
    """lm-evaluation-harness's HellaSwag text cleanup."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def to_item(row: dict, index: int) -> MCItem:
    ctx = row["ctx_a"] + " " + row["ctx_b"].capitalize()
    query = preprocess(row["activity_label"] + ": " + ctx)
    endings = tuple(" " + preprocess(e) for e in row["endings"])
    return MCItem(id=f"hellaswag/{row.get('ind', index)}/{index}", contexts=(query,) * len(endings),
                  continuations=endings, gold=int(row["label"]),
                  group=str(row.get("source_id") or index))


def load_items() -> list[MCItem]:
    return [to_item(row, i) for i, row in enumerate(hf_rows("hellaswag", "none", "validation"))]
