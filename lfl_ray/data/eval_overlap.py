"""Decontamination of a study's own data against the eval suites the study runs.

A record (an instruction example or a document) is dropped when it shares a run of
``NGRAM`` words with an item of one of the study's eval suites, after ``normalize_text``
(NFKC, straight quotes, lower case) and splitting into words: the 13-gram rule of the GPT-3
and Llama contamination studies. Eval items shorter than ``NGRAM`` words are compared
whole (their full word run must occur in the record).

Which text of each suite is compared (``SUITE_TEXTS``): HumanEval prompts, MBPP problem
statements and tests, GSM8K test questions, the question (context) and the right answer of
HellaSwag, ARC-Challenge and WinoGrande, and for ``general_loss``/``drift`` the LAMBADA and
BoolQ passages. ``heldout_loss`` is the user's own held-out split; ``lm_eval:<task>`` suites
are not checked (they are reported as such in the stats).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from typing import Callable, Iterable

from lfl_ray.data.decontam import normalize_text
from lfl_ray.data.records import Document, Example

NGRAM = 13
MIN_WORDS = 8
"""Eval items with fewer words than this are not compared (too short to mean a copy)."""
_WORD = re.compile(r"\w+")


def _humaneval() -> list[str]:
    from lfl_ray.data.decontam import humaneval_texts

    return [prompt for prompt, _doc in humaneval_texts()]


def _mbpp() -> list[str]:
    from lfl_ray.eval.mbpp import load_problems

    return [p["text"] + "\n" + "\n".join(p["test_list"]) for p in load_problems()]


def _gsm8k() -> list[str]:
    from lfl_ray.data.decontam import gsm8k_test_questions

    return list(gsm8k_test_questions().values())


def _mc(module: str) -> Callable[[], list[str]]:
    def texts() -> list[str]:
        import importlib

        items = importlib.import_module(f"lfl_ray.eval.{module}").load_items()
        return [item.contexts[item.gold] + item.continuations[item.gold] for item in items]
    return texts


def _general() -> list[str]:
    from lfl_ray.data import offline

    return [d.text for d in offline.lambada_documents() + offline.boolq_documents()]


SUITE_TEXTS: dict[str, Callable[[], list[str]]] = {
    "humaneval": _humaneval, "diversity": _humaneval, "mbpp": _mbpp, "gsm8k": _gsm8k,
    "hellaswag": _mc("hellaswag"), "arc_challenge": _mc("arc"), "winogrande": _mc("winogrande"),
    "general_loss": _general, "drift": _general,
}
"""Eval suite -> the texts of its items that a training record must not contain."""
NOT_EVAL_DATA = ("heldout_loss",)
"""Suites that score the user's own held-out split (nothing to check)."""


def words(text: str) -> list[str]:
    """The words of ``text`` as compared: normalized, letters and digits only."""
    return _WORD.findall(normalize_text(text))


def _grams(tokens: list[str]) -> Iterable[tuple[str, ...]]:
    return (tuple(tokens[i:i + NGRAM]) for i in range(len(tokens) - NGRAM + 1))


@functools.lru_cache(maxsize=16)
def suite_grams(suite: str) -> tuple[frozenset, tuple[str, ...]]:
    """(hashes of the 13-grams of the suite's items, the short items' word runs)."""
    grams: set[int] = set()
    short: list[str] = []
    for text in SUITE_TEXTS[suite]():
        tokens = words(text)
        if len(tokens) >= NGRAM:
            grams.update(hash(g) for g in _grams(tokens))
        elif len(tokens) >= MIN_WORDS:
            short.append(" " + " ".join(tokens) + " ")
    return frozenset(grams), tuple(short)


def record_text(record: Example | Document) -> str:
    if isinstance(record, Example):
        return "\n".join([text for _role, text in record.context] + [record.instruction, record.response])
    return record.text


def decontaminate(records: list, suites: Iterable[str], *, log=print) -> tuple[list, dict]:
    """``records`` without those overlapping the suites' items, and what was dropped."""
    checked = [s for s in dict.fromkeys(suites) if s in SUITE_TEXTS]
    unchecked = [s for s in dict.fromkeys(suites) if s not in SUITE_TEXTS and s not in NOT_EVAL_DATA]
    facts: dict = {"suites": checked, "ngram": NGRAM, "dropped": 0, "by_suite": {}, "examples": []}
    if unchecked:
        facts["not_checked"] = unchecked
    if not checked:
        return records, facts
    tables = {suite: suite_grams(suite) for suite in checked}
    kept, by_suite = [], Counter()
    for record in records:
        tokens = words(record_text(record))
        hashes = {hash(g) for g in _grams(tokens)}
        joined = None
        hit = None
        for suite, (grams, short) in tables.items():
            if not hashes.isdisjoint(grams):
                hit = suite
                break
            if short:
                joined = joined or " " + " ".join(tokens) + " "
                if any(s in joined for s in short):
                    hit = suite
                    break
        if hit is None:
            kept.append(record)
        else:
            by_suite[hit] += 1
            if len(facts["examples"]) < 5:
                facts["examples"].append(record.doc_id)
    facts.update(dropped=len(records) - len(kept), by_suite=dict(by_suite))
    if facts["dropped"]:
        log(f"[data] decontamination: dropped {facts['dropped']} of {len(records)} records sharing a "
            f"{NGRAM}-word run with eval items ({dict(by_suite)})")
    return kept, facts
