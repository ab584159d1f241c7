"""The CPython standard library as offline code: source files (code_cpt) and mined
docstring -> function pairs (code_ift).

Files are the ``.py`` files of the running interpreter's stdlib, without tests (``test``,
``tests``, ``idle_test`` folders, ``test_*.py``), without ``site-packages``, and without
generated data modules (``pydoc_data``; the ``encodings`` charmap codecs, which are
256-entry tables: a held-out set drawn from such a file distorts every loss). The content
depends on the Python version; it is recorded in the stats and the cache key.
"""

from __future__ import annotations

import ast
import functools
import os
import sys
import sysconfig
import textwrap
from dataclasses import asdict
from pathlib import Path

from lfl_ray.data.records import Document, Example

SKIP_DIRS = frozenset({"site-packages", "dist-packages", "test", "tests", "idle_test",
                       "__pycache__", "pydoc_data"})
MIN_DOC_WORDS = 8
PAIR_INSTRUCTION = ("Complete this Python function. Its signature and docstring are given; "
                    "write the whole function.\n\n```python\n{head}\n```")


def stdlib_root() -> Path:
    """Folder of the running interpreter's standard library."""
    return Path(sysconfig.get_paths()["stdlib"])


def python_tag() -> str:
    """The interpreter version the stdlib corpus comes from (e.g. ``3.11.7``)."""
    return ".".join(str(v) for v in sys.version_info[:3])


def _is_codec_table(path: Path, text: str) -> bool:
    return path.parent.name == "encodings" and ("decoding_table" in text or "decoding_map" in text)


@functools.lru_cache(maxsize=1)
def stdlib_files() -> tuple[tuple[str, str], ...]:
    """(relative path, source text) of every kept stdlib file, sorted by path (cached)."""
    root = stdlib_root()
    files = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if SKIP_DIRS.intersection(rel.parts[:-1]) or rel.name.startswith("test_"):
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if text.strip() and not _is_codec_table(path, text):
            files.append((rel.as_posix(), text))
    return tuple(files)


def stdlib_documents() -> list[Document]:
    """One document per stdlib file (code_cpt)."""
    return [Document(f"stdlib/{rel}", "stdlib", text) for rel, text in stdlib_files()]


def _functions(tree: ast.Module):
    """Public module-level functions and public methods of public classes."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            yield node
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and not item.name.startswith("_"):
                    yield item


def _segment(lines: list[str], start: int, end: int) -> str:
    return textwrap.dedent("".join(lines[start - 1:end])).rstrip()


def function_pairs(text: str) -> list[tuple[str, str, str]]:
    """(docstring, signature + docstring, whole function) of each documented public function."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    lines = text.splitlines(keepends=True)
    pairs = []
    for fn in _functions(tree):
        docstring = ast.get_docstring(fn)
        # A body that is only the docstring (or `...`, `pass`) has nothing to learn from.
        if not docstring or len(docstring.split()) < MIN_DOC_WORDS or len(fn.body) < 2:
            continue
        start = fn.decorator_list[0].lineno if fn.decorator_list else fn.lineno
        head = _segment(lines, start, fn.body[0].end_lineno)
        whole = _segment(lines, start, fn.end_lineno)
        pairs.append((docstring, head, whole))
    return pairs


PAIRS_FORMAT = 1


@functools.lru_cache(maxsize=1)
def stdlib_function_examples() -> tuple[Example, ...]:
    """Docstring -> function pairs mined from the stdlib (code_ift); one document per file.

    Pairs whose docstring matches a HumanEval prompt are dropped (see decontam). Parsing
    the whole stdlib takes several seconds, so the pairs are kept as JSON in the data
    cache, per Python version.
    """
    import json

    from lfl_ray.cache import data_cache_root

    cached = data_cache_root() / "sources" / f"stdlib-functions-{python_tag()}-v{PAIRS_FORMAT}.json"
    if cached.exists():
        return tuple(Example(**e) for e in json.loads(cached.read_text(encoding="utf-8")))
    from lfl_ray.data.decontam import matches_humaneval

    examples = []
    for rel, text in stdlib_files():
        for docstring, head, whole in function_pairs(text):
            if matches_humaneval(docstring):
                continue
            examples.append(Example(f"stdlib/{rel}", "stdlib_functions",
                                    PAIR_INSTRUCTION.format(head=head),
                                    f"```python\n{whole}\n```"))
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps([asdict(e) for e in examples]), encoding="utf-8")
    tmp.replace(cached)
    return tuple(examples)
