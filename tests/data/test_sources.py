"""Offline sources yield the expected number of records (ranges where the Python version matters)."""

import gzip

from lfl_ray.data import offline, stdlib
from lfl_ray.data.math_docs import math_doc_documents


def test_codeio_has_the_3241_unique_tasks():
    examples = offline.codeio_examples()
    assert len(examples) == 3241
    assert len({e.doc_id for e in examples}) == 3241
    assert all(e.response.startswith("```python") and "main_solution" in e.instruction for e in examples[:50])


def test_math_has_5000_problems_with_worked_solutions():
    examples = offline.math_examples()
    assert len(examples) == 5000 and len({e.doc_id for e in examples}) == 5000
    assert sum("\\boxed" in e.response for e in examples) > 4900


def test_gsm_symbolic_examples_group_by_template():
    examples = offline.gsm_symbolic_examples(size=400, seed=1)
    assert len(examples) == 400
    templates = {e.doc_id for e in examples}
    assert 60 <= len(templates) <= 85  # 85 usable templates in reasoning-gym 0.1.25
    assert all("####" in e.response for e in examples)


def test_general_passages():
    assert len(offline.lambada_documents()) == 5153
    assert 2900 <= len(offline.boolq_documents()) <= 3270  # unique passages of 3,270 questions


def test_stdlib_corpus_has_no_tests_or_codec_tables():
    files = dict(stdlib.stdlib_files())
    assert 500 <= len(files) <= 900
    assert not any("/test/" in f"/{p}" or "/tests/" in f"/{p}" or p.split("/")[-1].startswith("test_")
                   for p in files)
    assert "encodings/cp1252.py" not in files and "encodings/utf_8.py" in files
    assert "json/decoder.py" in files


def test_stdlib_pairs_have_long_docstrings():
    examples = stdlib.stdlib_function_examples()
    assert 3000 <= len(examples) <= 4500  # ~3,900 on Python 3.11
    ex = examples[0]
    head = ex.instruction.split("```python\n", 1)[1].rsplit("\n```", 1)[0]
    assert ex.response.startswith("```python\n" + head)  # the response completes the given head


def test_math_docs_are_split_into_sections(tmp_path, monkeypatch):
    """A fake Debian root with one file of each package: every package is found and split."""
    pari = tmp_path / "usr/share/pari/doc"
    pari.mkdir(parents=True)
    body = "Some text about number fields and their class groups. " * 10
    (pari / "usersch3.tex").write_text(f"\\section{{A}}\n{body}\n\\subsec{{B}}\n{body}\n")
    (pari / "parimacro.tex").write_text("\\def\\x{y}" * 100)
    info = tmp_path / "usr/share/info"
    info.mkdir(parents=True)
    with gzip.open(info / "maxima.info-1.gz", "wt") as h:
        h.write(f"\x1f\nFile: maxima.info,  Node: Limits,  Next: X\n\nLimits\n{body}\n"
                f"\x1f\nFile: maxima.info,  Node: Function and Variable Index,  Next: Y\n\n{body}\n")
    sympy = tmp_path / "usr/share/doc/python-sympy-doc/html/_sources/tutorials"
    sympy.mkdir(parents=True)
    (sympy / "intro.rst.txt").write_text(body)
    monkeypatch.setenv("LFL_RAY_MATH_DOCS_ROOT", str(tmp_path))
    docs, found = math_doc_documents()
    assert found == ["pari-doc", "maxima-doc", "python-sympy-doc"]
    ids = sorted(d.doc_id for d in docs)
    assert ids == ["maxima/maxima.info-1.gz#Limits", "pari/usersch3.tex#1", "pari/usersch3.tex#2",
                   "sympy/tutorials/intro.rst.txt"]
