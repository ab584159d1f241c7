"""GSM8K: answer extraction on real-format outputs; the contaminated problems are dropped."""

from __future__ import annotations

import pytest

from lfl_ray.eval import gsm8k

# (model output, gold, strict correct, flexible correct)
TABLE = [
    ("Janet sells 16 - 3 - 4 = 9 duck eggs a day.\nShe makes 9 * 2 = $18.\n#### 18", "18", True, True),
    ("She makes 9 * 2 = 18 dollars. So the answer is 18.", "18", True, True),
    ("The answer is $1,080.", "1080", True, True),
    ("#### 1,080", "1080", True, True),
    ("The final answer is: 42", "42", True, True),
    ("#### 18.00", "18", True, True),
    ("#### -5", "-5", True, True),
    ("She makes 9 * 2 = 18 dollars every day.", "18", False, True),  # no asked-for format
    ("It takes 2 + 3 = 5 hours, then 5 * 4 = 20.", "20", False, True),
    ("#### 17\nWait, that is wrong, it is 18", "18", False, True),  # strict takes the marked one
    ("So the answer is 18.\n\nQuestion: next one has 7", "18", True, False),  # flexible: last number
    ("I don't know.", "18", False, False),
    ("The answer is 3.5 cups.", "3.5", True, True),
]


@pytest.mark.parametrize("output,gold,strict,flexible", TABLE)
def test_answer_extraction(output, gold, strict, flexible):
    assert gsm8k.same_number(gsm8k.extract_strict(output), gold) is strict
    assert gsm8k.same_number(gsm8k.extract_flexible(output), gold) is flexible


def test_normalize_number():
    assert gsm8k.normalize_number("$1,234.50.") == "1234.50"


def test_exclude_drops_problems_whatever_their_spacing_or_case():
    everything = gsm8k.load_problems(exclude=set())
    assert len(everything) == 1319
    first = everything[0]["question"]
    kept = gsm8k.load_problems(exclude={"  " + first.upper()})
    assert len(kept) == 1318 and first not in {p["question"] for p in kept}
    assert "So the answer is" in everything[0]["fewshot_prompt"]
    assert everything[0]["fewshot_prompt"].rstrip().endswith("Answer:")


def test_default_excludes_the_gsm_symbolic_source_problems():
    from lfl_ray.data.decontam import gsm8k_excluded_questions, normalize_text

    excluded = gsm8k_excluded_questions()
    problems = gsm8k.load_problems()
    assert len(problems) == 1319 - len(excluded)
    assert not any(normalize_text(p["question"]) in excluded for p in problems)
