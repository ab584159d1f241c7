"""ARC-Challenge test set (1,172 questions), scored zero-shot as lm-evaluation-harness does.

Questions come from the OLMES request file (``arc_challenge/test_rc_5shot``), whose docs
hold ``Question: ...\\nAnswer:`` and the answer texts; we score each answer text after that
prompt (no few-shot examples, like the harness's default) with acc_norm as the headline.
Falls back to the 299-question validation arrow set only if the request file is missing.
"""

from __future__ import annotations

from lfl_ray.eval.multiple_choice import MCItem
from lfl_ray.eval.sources import hf_rows, request_docs


def load_items() -> list[MCItem]:
    try:
        docs = request_docs("arc_challenge", "test_rc_5shot")
    except FileNotFoundError:
        docs = []
    if docs:
        return [MCItem(id=f"arc_challenge/{d['id']}", contexts=(d["query"],) * len(d["choices"]),
                       continuations=tuple(" " + c for c in d["choices"]), gold=int(d["gold"]),
                       group=str(d["id"])) for d in docs]
    items = []
    for row in hf_rows("ai2_arc", "ARC-Challenge", "validation"):
        labels = list(row["choices"]["label"])
        texts = row["choices"]["text"]
        items.append(MCItem(id=f"arc_challenge/{row['id']}",
                            contexts=(f"Question: {row['question']}\nAnswer:",) * len(texts),
                            continuations=tuple(" " + t for t in texts),
                            gold=labels.index(row["answerKey"]), group=str(row["id"])))
    return items
