"""Math documentation text from Debian packages, for the math_cpt corpus.

``make debian-docs`` apt-installs them; each is optional and the regime says which were
found (a logged note and ``stats["math_docs"]``). What each package installs and what we
keep:
- ``pari-doc``: the PARI/GP manuals as TeX (``/usr/share/pari/doc/*.tex``, ~1.1 M tokens);
  kept as TeX source, one document per section (``\\section``, ``\\subsec``...), macro
  files and the reference card left out.
- ``maxima-doc``: the Maxima manual as GNU info (``/usr/share/info/maxima.info-*.gz`` and
  ``/usr/share/info/maxima/*.info.gz``, plain text); one document per info node, index
  nodes left out.
- ``python-sympy-doc``: the SymPy docs' reStructuredText/Markdown sources
  (``/usr/share/doc/python-sympy-doc/html/_sources/**/*.txt``); one document per file.

``$LFL_RAY_MATH_DOCS_ROOT`` (default ``/``) replaces the file-system root the paths above
are looked up under (tests point it at an empty folder to check the fallback).
"""

from __future__ import annotations

import gzip
import os
import re
from pathlib import Path

from lfl_ray.data.records import Document

MATH_DOC_PACKAGES = ("pari-doc", "maxima-doc", "python-sympy-doc")
MIN_CHARS = 200
PARI_SKIP = frozenset({"parimacro.tex", "pdfmacs.tex", "paricfg.tex", "users.tex", "refcard.tex"})
_TEX_HEADING = re.compile(r"^\\(chapter|section|subsec|subsubsec|subsection)\b", re.M)
_INFO_NODE = re.compile(r"^File: [^,]+,\s+Node: ([^,\n]+)", re.M)


def docs_root() -> Path:
    """The root under which the Debian doc paths are looked up."""
    return Path(os.environ.get("LFL_RAY_MATH_DOCS_ROOT") or "/")


def _read(path: Path) -> str:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
            return handle.read()
    return path.read_text(encoding="utf-8", errors="replace")


def _paths(root: Path) -> dict[str, list[Path]]:
    share = root / "usr" / "share"
    return {
        "pari-doc": sorted(p for p in (share / "pari" / "doc").glob("*.tex") if p.name not in PARI_SKIP),
        "maxima-doc": sorted(list((share / "info").glob("maxima.info-*.gz"))
                             + list((share / "info" / "maxima").glob("*.info*"))),
        "python-sympy-doc": sorted((share / "doc" / "python-sympy-doc" / "html" / "_sources").rglob("*.txt")),
    }


def math_docs_present() -> list[str]:
    """Debian math doc packages whose files are installed (cheap: only lists files)."""
    return [name for name, paths in _paths(docs_root()).items() if paths]


def _pari(paths: list[Path]) -> list[Document]:
    docs = []
    for path in paths:
        text = _read(path)
        starts = [0] + [m.start() for m in _TEX_HEADING.finditer(text)] + [len(text)]
        for i, (a, b) in enumerate(zip(starts, starts[1:])):
            section = text[a:b].strip()
            if len(section) >= MIN_CHARS:
                docs.append(Document(f"pari/{path.name}#{i}", "pari", section))
    return docs


def _maxima(paths: list[Path]) -> list[Document]:
    docs = []
    for path in paths:
        for chunk in _read(path).split("\x1f"):
            match = _INFO_NODE.search(chunk)
            if not match or "Index" in match.group(1):
                continue
            body = chunk[match.end():].split("\n", 1)[-1].strip()
            if len(body) >= MIN_CHARS:
                docs.append(Document(f"maxima/{path.name}#{match.group(1).strip()}", "maxima", body))
    return docs


def _sympy(paths: list[Path], base: Path) -> list[Document]:
    docs = []
    for path in paths:
        text = _read(path).strip()
        if len(text) >= MIN_CHARS:
            docs.append(Document(f"sympy/{path.relative_to(base).as_posix()}", "sympy", text))
    return docs


def math_doc_documents() -> tuple[list[Document], list[str]]:
    """Documents from every installed math doc package, and the packages found."""
    root = docs_root()
    paths = _paths(root)
    docs = _pari(paths["pari-doc"]) + _maxima(paths["maxima-doc"]) + _sympy(
        paths["python-sympy-doc"], root / "usr" / "share" / "doc" / "python-sympy-doc" / "html" / "_sources")
    return docs, [name for name, found in paths.items() if found]
