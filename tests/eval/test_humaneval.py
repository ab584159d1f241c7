"""HumanEval: canonical solutions pass in the sandbox, wrong ones fail; pass@k; completions."""

from __future__ import annotations

import math

from lfl_ray.eval import humaneval
from lfl_ray.eval.prompts import extract_code


def test_canonical_solutions_pass_all_164():
    problems = humaneval.load_problems()
    assert len(problems) == 164
    programs = [humaneval.program(p, p["canonical_solution"]) for p in problems]
    passed = humaneval.check_programs(programs, workers=2)
    assert sum(passed) == 164


def test_wrong_solutions_fail():
    problems = humaneval.load_problems()[:20]
    wrong = [humaneval.program(p, "    return None\n") for p in problems]
    # Each problem given the next problem's solution: plausible code, wrong answers.
    shifted = [humaneval.program(p, q["canonical_solution"])
               for p, q in zip(problems, problems[1:] + problems[:1])]
    assert not any(humaneval.check_programs(wrong + shifted, workers=2))


def test_pass_at_k_matches_the_combinatorial_definition():
    for n, c, k in [(10, 3, 1), (10, 3, 5), (20, 0, 1), (5, 5, 2), (200, 17, 10)]:
        exact = 1 - math.comb(n - c, k) / math.comb(n, k)
        assert math.isclose(humaneval.pass_at_k(n, c, k), exact, rel_tol=1e-9, abs_tol=1e-12)
    assert humaneval.pass_at_k(10, 3, 1) == 0.3


def test_chat_completion_with_full_function_replaces_the_stub():
    problem = humaneval.load_problems()[0]  # has_close_elements, prompt imports List
    answer = ("Here is the function:\n```python\n"
              "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
              "    return any(abs(a - b) < threshold for i, a in enumerate(numbers)\n"
              "               for b in numbers[i + 1:])\n```\nHope this helps!")
    completion = humaneval.to_completion(problem, answer, chat=True)
    assert "Hope this helps" not in completion
    assert humaneval.check_programs([humaneval.program(problem, completion)]) == [True]
    body_only = "```python\n" + problem["canonical_solution"] + "```"
    completion = humaneval.to_completion(problem, body_only, chat=True)
    assert humaneval.check_programs([humaneval.program(problem, completion)]) == [True]


def test_extract_code_takes_the_first_block_or_an_unclosed_one():
    assert extract_code("a\n```python\nx = 1\n```\n```python\ny\n```") == "x = 1\n"
    assert extract_code("```py\nx = 2\n") == "x = 2\n"
    assert extract_code("no fence") == "no fence"


def test_base_completions_are_cut_at_stop_sequences():
    from lfl_ray.eval.backend import cut_at_stop

    text = "    return 1\n\ndef other():\n    pass\nif __name__ == '__main__':"
    assert cut_at_stop(text, humaneval.STOP) == "    return 1\n"
