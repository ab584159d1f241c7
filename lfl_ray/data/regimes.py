"""The registry of regimes: what each is made of, offline and on the hub.

| regime   | kind     | offline                                              | hub |
|----------|----------|------------------------------------------------------|-----|
| code_ift | ift      | CodeI/O tasks + stdlib docstring->function pairs     | Magicoder-Evol-Instruct-110K |
| math_ift | ift      | MATH worked solutions + gsm_symbolic step-by-step    | MetaMathQA |
| code_cpt | cpt      | CPython stdlib sources (no tests, no codec tables)   | starcoderdata python (gated) |
| math_cpt | cpt      | MATH problem+solution text + Debian math docs        | open-web-math |
| general  | passages | LAMBADA + BoolQ passages (forgetting by loss)        | lambada_openai + boolq |
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from lfl_ray.data.records import Document, Example
from lfl_ray.data.spec import DataSpec

KIND: dict[str, str] = {"code_ift": "ift", "math_ift": "ift", "code_cpt": "cpt",
                        "math_cpt": "cpt", "general": "passages"}
"""How a regime's records become rows: chat IFT, packed CPT, or one passage per row."""

DESCRIPTION: dict[str, str] = {
    "code_ift": "code instruction tuning: CodeI/O tasks + stdlib docstring->function pairs",
    "math_ift": "math instruction tuning: MATH worked solutions + gsm_symbolic step-by-step answers",
    "code_cpt": "code continued pretraining: CPython stdlib sources, packed",
    "math_cpt": "math continued pretraining: MATH solutions + Debian math docs (pari, maxima, sympy), packed",
    "general": "general English text (LAMBADA + BoolQ passages) for the forgetting loss",
}

MATH_DOCS_ABSENT = ("math docs absent: no Debian pari-doc/maxima-doc/python-sympy-doc found "
                    "(run `make debian-docs`); math_cpt uses MATH text alone")


def offline_records(spec: DataSpec, log=print) -> tuple[list[Example | Document], dict]:
    """The offline records of ``spec.regime`` and facts for the stats (notes, flags)."""
    from lfl_ray.data import offline, stdlib

    info: dict = {"notes": []}
    if spec.regime == "code_ift":
        records = offline.codeio_examples() + list(stdlib.stdlib_function_examples())
        info["python"] = stdlib.python_tag()
    elif spec.regime == "math_ift":
        records = offline.math_examples() + offline.gsm_symbolic_examples(seed=spec.seed)
        info["notes"].append("gsm_symbolic templates are GSM8K test questions: those 100 problems "
                             "leave the GSM8K eval (lfl_ray.data.decontam); MATH is never an eval")
    elif spec.regime == "code_cpt":
        records = stdlib.stdlib_documents()
        info["python"] = stdlib.python_tag()
    elif spec.regime == "math_cpt":
        from lfl_ray.data.math_docs import math_doc_documents

        docs, found = math_doc_documents()
        records = offline.math_documents() + docs
        info["math_docs"] = found
        info["math_docs_absent"] = not found
        if not found:
            info["notes"].append(MATH_DOCS_ABSENT)
            log(f"[data] note: {MATH_DOCS_ABSENT}")
    else:
        records = offline.lambada_documents() + offline.boolq_documents()
    return records, info


def fingerprint(spec: DataSpec) -> dict:
    """What, besides the spec, changes a build: asset versions, Python, installed docs."""
    from lfl_ray.assets import WHEELS

    facts: dict = {"spec": asdict(spec)}
    if spec.source == "offline":
        facts["assets"] = {name: w.version for name, w in WHEELS.items()}
        if spec.regime.startswith("code"):
            from lfl_ray.data.stdlib import python_tag, stdlib_root

            facts["python"] = [python_tag(), str(stdlib_root())]
        if spec.regime == "math_cpt":
            from lfl_ray.data.math_docs import docs_root, math_docs_present

            facts["math_docs"] = [str(docs_root()), math_docs_present()]
    elif spec.hub_dataset and Path(spec.hub_dataset).expanduser().is_dir():
        root = Path(spec.hub_dataset).expanduser()
        facts["local_files"] = sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
                                      for p in root.rglob("*") if p.is_file())
    return facts
