"""WinoGrande XL validation (1,267 items) with partial scoring (lm-evaluation-harness).

The sentence is cut at the blank: each option fills the blank in its own context, and the
same continuation (the rest of the sentence) is scored under each; headline metric acc
(the continuation is shared, so there is nothing to length-normalize).
"""

from __future__ import annotations

from lfl_ray.eval.multiple_choice import MCItem
from lfl_ray.eval.sources import hf_rows


def to_item(row: dict, index: int) -> MCItem:
    sentence = row["sentence"]
    blank = sentence.index("_")
    continuation = " " + sentence[blank + 1:].strip()
    contexts = (sentence[:blank] + row["option1"], sentence[:blank] + row["option2"])
    return MCItem(id=f"winogrande/{index}", contexts=contexts, continuations=(continuation,) * 2,
                  gold={"1": 0, "2": 1}[str(row["answer"])], group=str(index))


def load_items() -> list[MCItem]:
    return [to_item(row, i)
            for i, row in enumerate(hf_rows("winogrande", "winogrande_xl", "validation"))]
