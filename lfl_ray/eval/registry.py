"""Every eval suite a study can name, registered in one place.

A suite is a ``Suite`` value: how to load its fixed items (from the spec and the sweep's
data, never from the model, so the base model and every trial see the same items), how to
score a model on them through a backend, and which of its metrics can be a study's primary
``learning`` or ``forgetting`` metric (with the direction that means "better").

Adding a suite (the way peft's ``register_peft_method`` adds a tuner):

1. Write ``lfl_ray/eval/catalog/<name>.py``: its ``load`` and ``run`` functions and, at the
   bottom, ``register_suite(Suite(name=..., load=..., run=..., scores={...}))``. Every
   module in ``lfl_ray.eval.catalog`` is imported when the registry is first read, so
   nothing else needs an edit; ``lfl_ray/eval/catalog/multiple_choice.py`` is a short
   example. Code outside lfl-ray can register a suite the same way before the sweep starts,
   or ship it as a ``lfl_ray.eval_suites`` entry point (a module that registers on import).
2. Add its test beside the others (``tests/eval/test_registry.py`` already runs every
   registered suite on the tiny model).

Names with a registered prefix (``lm_eval:<task>``) are built on demand by the prefix's
factory; a study's own suites (``eval.custom``) are built from the study's spec.
Aggregates such as ``mc_mean`` name their parts explicitly, so registering another
multiple-choice suite never changes what ``mc_mean`` means.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

from lfl_ray.errors import ConfigError

KINDS = ("loss", "generation", "choice")
"""loss: scored on TokenBlocks by the HF model itself (can be split across DDP ranks);
generation: prompts answered by ``backend.generate``; choice: log-likelihoods of options."""


@dataclass(frozen=True)
class Suite:
    """One eval suite: fixed items, a scorer, and the metrics it can offer as primary."""

    name: str
    """The name a study writes in ``eval.suites``."""
    load: Callable[..., Any]
    """``load(spec, heldout=TokenBlocks|None, general=TokenBlocks|None) -> items``: the fixed
    seeded subset (``eval.items.subset_indices``) of the suite's items."""
    run: Callable[..., Any]
    """``run(backend, spec, items, reference) -> EvalResult``; ``reference`` is the base
    model's state from ``make_reference`` (None for suites without one)."""
    kind: str = "generation"
    """One of ``KINDS``."""
    scores: dict = field(default_factory=dict)
    """Metrics a study may pick as ``learning_metric``/``forgetting_metric``, each mapped to
    True when higher is better (accuracy) or False when lower is (loss, KL)."""
    make_reference: Callable[..., Any] | None = None
    """``make_reference(model, items, spec) -> state`` computed once on the base model (and
    cached with its result), e.g. the top-k log-probs that KL drift is measured against."""
    base_result: Callable[..., Any] | None = None
    """``base_result(items, reference) -> EvalResult`` for the base model when scoring it is
    trivial (KL of the base against itself is 0); None: the base is scored with ``run``."""
    needs: str | None = None
    """``heldout`` or ``general``: the TokenBlocks the suite's items come from."""
    doc: str = ""
    """One line for ``lfl-ray eval suites`` and error messages."""

    def validate(self) -> "Suite":
        if not self.name or not isinstance(self.name, str):
            raise ConfigError("suite.name", self.name, "must be a non-empty string")
        if self.kind not in KINDS:
            raise ConfigError(f"suite {self.name!r}.kind", self.kind, f"must be one of {list(KINDS)}")
        if self.needs not in (None, "heldout", "general"):
            raise ConfigError(f"suite {self.name!r}.needs", self.needs,
                              "must be null, 'heldout' or 'general'")
        for metric, higher in self.scores.items():
            if not isinstance(higher, bool):
                raise ConfigError(f"suite {self.name!r}.scores.{metric}", higher,
                                  "must be true (higher is better) or false")
        return self


@dataclass(frozen=True)
class Aggregate:
    """A metric averaged over other suites' metrics, e.g. the paper's ``mc_mean``."""

    name: str
    parts: dict
    """Suite -> its metric that enters the mean (an explicit list: new suites never join)."""
    higher_is_better: bool = True
    doc: str = ""

    def metrics(self) -> list[str]:
        return [f"{suite}_{metric}" if not metric.startswith(suite) else metric
                for suite, metric in self.parts.items()]


_SUITES: dict[str, Suite] = {}
_PREFIXES: dict[str, Callable[[str], Suite]] = {}
_AGGREGATES: dict[str, Aggregate] = {}
_SPEC_RESOLVERS: list[Callable] = []
_loaded = False


def register_suite(suite: Suite, *, replace: bool = False) -> Suite:
    """Make ``suite`` nameable in ``eval.suites``; a second suite of one name is an error
    unless ``replace``."""
    suite.validate()
    if suite.name in _SUITES and not replace:
        raise ValueError(f"eval suite {suite.name!r} is already registered")
    _SUITES[suite.name] = suite
    return suite


def unregister_suite(name: str) -> None:
    """Remove a suite (tests that register a toy one clean up with this)."""
    _SUITES.pop(name, None)


def register_prefix(prefix: str, factory: Callable[[str], Suite]) -> None:
    """Names starting with ``prefix`` are built by ``factory(name)`` (e.g. ``lm_eval:``)."""
    _PREFIXES[prefix] = factory


def register_spec_resolver(resolve: Callable) -> None:
    """``resolve(name, spec) -> Suite | None`` builds suites a study declares itself
    (``catalog/user.py``: ``eval.custom``)."""
    _SPEC_RESOLVERS.append(resolve)


def register_aggregate(aggregate: Aggregate) -> Aggregate:
    _AGGREGATES[aggregate.name] = aggregate
    return aggregate


def _load() -> None:
    """Import the catalog (and entry points) once, so their registrations have run."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from lfl_ray.eval import catalog

    for module in pkgutil.iter_modules(catalog.__path__):
        importlib.import_module(f"{catalog.__name__}.{module.name}")
    from importlib.metadata import entry_points

    for point in entry_points(group="lfl_ray.eval_suites"):
        point.load()


def suite_names() -> tuple[str, ...]:
    """Registered suite names (prefixed and study-declared names come on top)."""
    _load()
    return tuple(_SUITES)


def prefixes() -> tuple[str, ...]:
    _load()
    return tuple(_PREFIXES)


def aggregates() -> dict[str, Aggregate]:
    _load()
    return dict(_AGGREGATES)


def get_suite(name: str, spec=None) -> Suite:
    """The suite called ``name``: registered, built from a prefix, or declared in ``spec``
    (``eval.custom``). Unknown names are a ConfigError listing what exists."""
    _load()
    if name in _SUITES:
        return _SUITES[name]
    for resolve in _SPEC_RESOLVERS if spec is not None else ():
        suite = resolve(name, spec)
        if suite is not None:
            return suite
    for prefix, factory in _PREFIXES.items():
        if isinstance(name, str) and name.startswith(prefix):
            return factory(name)
    declared = [c.name for c in getattr(spec, "custom", ())] if spec is not None else []
    allowed = list(_SUITES) + declared + [f"{p}<task>" for p in _PREFIXES]
    from lfl_ray.config_io import closest

    raise ConfigError("eval.suites", name, f"must be one of {allowed}",
                      hint=closest(str(name), allowed) or None)


def score_direction(metric: str, suites, spec=None) -> bool | None:
    """True/False (higher/lower is better) when ``metric`` is a score of one of ``suites``
    or an aggregate whose parts they all produce; None when it is neither."""
    if metric in aggregates():
        return aggregates()[metric].higher_is_better
    for name in suites:
        suite = get_suite(name, spec)
        if metric in suite.scores:
            return suite.scores[metric]
    return None


def primary_metrics(suites=None, spec=None) -> dict[str, bool]:
    """Every metric that can be primary: the scores of ``suites`` (default: all registered)
    and the aggregates, each with its direction."""
    names = suite_names() if suites is None else suites
    out: dict[str, bool] = {}
    for name in names:
        out.update(get_suite(name, spec).scores)
    out.update({a.name: a.higher_is_better for a in aggregates().values()})
    return out
