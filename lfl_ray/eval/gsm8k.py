"""GSM8K test accuracy (1,319 problems, minus those contaminated by gsm_symbolic templates).

Base models get the standard 8-shot chain-of-thought prompt (Wei et al.; the ``context`` of
``gsm8k/gold_bpb_5shot``) whose answers end "So the answer is N.", cut at "Question:" or a
blank line. Chat models get the question zero-shot and are asked to end with "#### N".

Two scores per problem, as in lm-evaluation-harness:
- strict: the number in the format the prompt asked for: ``#### N`` (GSM8K's own answer
  format, asked of chat models) or "The answer is N" (what the CoT exemplars end with);
- flexible: the last number anywhere in the output.
Numbers are compared after dropping ``$``, thousands commas and a trailing period, and
numerically (``18.00`` == ``18``).
"""

from __future__ import annotations

import re

from lfl_ray.eval.prompts import chat_prompt
from lfl_ray.eval.sources import request_docs

STOP = ("Question:", "</s>", "<|im_end|>", "\n\n")
"""Stop sequences of the few-shot prompt (lm-evaluation-harness / OLMES)."""

CHAT_INSTRUCTION = ("Solve the following math problem step by step. At the end, write the final "
                    "answer as a number on its own line in the form \"#### <number>\".\n\n"
                    "{question}")

_STRICT = (re.compile(r"####\s*\$?\s*(-?[0-9][0-9.,]*)"),
           re.compile(r"[Tt]he (?:final )?answer is:?\s*\$?\s*(-?[0-9][0-9.,]*)"))
_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")


def load_problems(exclude: set[str] | None = None) -> list[dict]:
    """Test problems as dicts (question, answer, short_answer, fewshot_prompt, id), without
    those whose normalized question is in ``exclude`` (default: the data layer's list of
    GSM8K questions that gsm_symbolic templates copy)."""
    from_data_layer = exclude is None
    if from_data_layer:
        from lfl_ray.data.decontam import gsm8k_excluded_questions, normalize_text

        exclude = gsm8k_excluded_questions()
    else:
        normalize_text = _normalize_text
    excluded = {normalize_text(q) for q in exclude}
    problems = []
    for doc in request_docs("gsm8k", "gold_bpb_5shot"):
        if normalize_text(doc["question"]) in excluded:
            continue
        problems.append({"id": f"gsm8k/{doc['id']}", "question": doc["question"],
                         "answer": doc["answer"], "short_answer": str(doc["short_answer"]),
                         "fewshot_prompt": doc["_request"]["context"]})
    return problems


def _normalize_text(text: str) -> str:
    """Whitespace- and case-insensitive form of a question (used when ``exclude`` is given)."""
    return " ".join(text.lower().split())


def make_prompt(problem: dict, tokenizer, chat: bool) -> str:
    if chat:
        return chat_prompt(tokenizer, CHAT_INSTRUCTION.format(question=problem["question"]))
    return problem["fewshot_prompt"]


def normalize_number(text: str) -> str:
    """``$1,234.50.`` -> ``1234.50``."""
    text = text.strip().replace(",", "").replace("$", "")
    return text.rstrip(".")


def extract_strict(output: str) -> str | None:
    """The answer in the asked-for format, or None."""
    for pattern in _STRICT:
        match = pattern.search(output)
        if match:
            return normalize_number(match.group(1))
    return None


def extract_flexible(output: str) -> str | None:
    """The last number in the output, or None."""
    found = [a or b for a, b in _FLEXIBLE.findall(output)]
    found = [normalize_number(f) for f in found if re.search(r"[0-9]", f)]
    return found[-1] if found else None


def same_number(predicted: str | None, gold: str) -> bool:
    if predicted is None:
        return False
    gold = normalize_number(gold)
    if predicted == gold:
        return True
    try:
        return abs(float(predicted) - float(gold)) < 1e-6
    except ValueError:
        return False
