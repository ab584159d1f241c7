"""The evaluator the training loop calls at milestones, and paired comparisons of results.

``MilestoneEvaluator`` holds the spec and the data (never a model), so cloudpickle ships it
to Ray workers. The driver calls ``base()`` once per sweep (served from the disk cache
after the first time); each worker calls the evaluator on its live model; ``compare`` turns
a trial's result and the base result into flat MLflow metrics with paired SEs.
"""

from __future__ import annotations

import math
import time
from typing import Sequence

import numpy as np
import torch

from lfl_ray.data.blocks import TokenBlocks
from lfl_ray.errors import ConfigError
from lfl_ray.eval import base_cache
from lfl_ray.eval.backend import HFBackend, eval_mode, model_device
from lfl_ray.eval.result import EvalResult
from lfl_ray.eval.registry import aggregates, get_suite, score_direction
from lfl_ray.eval.spec import EvalSpec
from lfl_ray.eval.stats import paired_se
from lfl_ray.eval.suites import add_aggregates, items_fingerprint

GENERATION_KEYS = ("chat", "max_new_tokens", "code_samples", "code_temperature")
SE_SUFFIXES = ("_se", "_stderr")
"""Names of standard errors (lfl-ray's ``_se``, lm-eval's ``_stderr``): no deltas for them."""


class MilestoneEvaluator:
    """Evaluates a model on fixed items; the base model once (cached), trials in place."""

    def __init__(self, spec: EvalSpec, model: str, heldout: TokenBlocks | None,
                 general: TokenBlocks | None, *, require_primary: bool = True):
        self.spec = spec.validate()
        if require_primary:  # compare() needs the learning and forgetting metrics
            self.spec.require_primary_suites()
        self.model = model
        self.heldout = heldout
        self.general = general
        self.suites = {name: get_suite(name, self.spec) for name in self.spec.suites}
        """Each suite's definition, resolved on the driver (a study's own suites read their
        files here) and shipped with the evaluator."""
        for name, suite in self.suites.items():  # fail now, not at the first milestone
            if suite.needs == "heldout" and heldout is None:
                raise ConfigError("heldout", None, f"suite {name!r} needs held-out TokenBlocks")
            if suite.needs == "general" and general is None:
                raise ConfigError("general", None, f"suite {name!r} needs general-text TokenBlocks")
        self._items: dict = {}
        self._refs: dict = {}
        """Base-model references of the suites that have one (KL drift's top-k log-probs)."""
        self.base_computed: tuple[str, ...] = ()
        """Suites the last ``base()`` call had to run the model for (the rest came from cache)."""

    def items(self, suite: str):
        """The fixed items of ``suite`` (loaded once, shipped with the evaluator)."""
        if suite not in self._items:
            self._items[suite] = self.suites[suite].load(self.spec, heldout=self.heldout,
                                                         general=self.general)
        return self._items[suite]

    def _cache_path(self, suite: str, dtype: str):
        spec = self.spec
        key = {"model": self.model, "suite": suite, "limit": spec.limit(suite), "seed": spec.seed,
               "items": items_fingerprint(self.items(suite)), "batch_size": spec.batch_size,
               "dtype": dtype}
        kind = self.suites[suite].kind
        if kind != "loss":  # lm-eval's tokenization (BOS) and metric names
            key.update(add_bos_token=spec.add_bos_token, rules="lm-eval-0.4.13")
        if kind == "generation":
            key.update({k: getattr(spec, k) for k in GENERATION_KEYS})
        return base_cache.entry_path(self.model, suite, key)

    def base(self) -> EvalResult:
        """The base model's result: from the disk cache, computing only missing suites."""
        device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
        result, computed, loaded = EvalResult(), [], None
        for suite in self.spec.suites:
            path = self._cache_path(suite, str(dtype))
            if self.suites[suite].make_reference is not None:
                part, extra = base_cache.load(path, with_extra=True)
                if part is not None:
                    from lfl_ray.eval.loss import DriftReference

                    self._refs[suite] = DriftReference.from_state(extra)
            else:
                part = base_cache.load(path)
            if part is None:
                if loaded is None:
                    loaded = self._load_base(device, dtype)
                part, extra = self._run_base_suite(suite, *loaded)
                base_cache.save(path, part, extra)
                computed.append(suite)
            result.merge(part)
        add_aggregates(result)
        self.base_computed = tuple(computed)
        return result

    def _load_base(self, device: str, dtype):
        from lfl_ray.models import load_model, load_tokenizer

        model = load_model(self.model, dtype=dtype).to(device)
        return model, load_tokenizer(self.model)

    def _run_base_suite(self, suite: str, model, tokenizer):
        definition = self.suites[suite]
        if definition.make_reference is None:
            return self._evaluate(model, tokenizer, (suite,)), None
        with eval_mode(model):
            self._refs[suite] = definition.make_reference(model, self.items(suite), self.spec)
        if definition.base_result is not None:
            part = definition.base_result(self.items(suite), self._refs[suite])
        else:
            part = self._evaluate(model, tokenizer, (suite,))
        return part, self._refs[suite].to_state()

    def __call__(self, model, tokenizer, *, completions: tuple[str, ...] = (),
                 suites: Sequence[str] | None = None,
                 shard: tuple[int, int] | None = None) -> EvalResult:
        """Evaluate a live (tuned, possibly peft-wrapped) model in place; its mode is restored.

        ``suites`` defaults to the spec's. ``shard=(rank, world)`` scores only that rank's
        contiguous slice of the loss suites' blocks, so DDP ranks split a milestone's loss
        evals and rank 0 joins the per-block values (``join_loss_shards``).
        ``completions`` (fault injection only) replace the model's generated text."""
        suites = tuple(self.spec.suites if suites is None else suites)
        if shard is not None and any(self.suites[s].kind != "loss" for s in suites):
            raise ValueError(f"shard: only loss suites can be split by block, got {list(suites)}")
        if any(self.suites[s].make_reference is not None and s not in self._refs for s in suites):
            self.base()  # loads the references from the cache (computes them if absent)
        return self._evaluate(model, tokenizer, suites, completions, shard)

    def _evaluate(self, model, tokenizer, suites, completions: tuple[str, ...] = (),
                  shard: tuple[int, int] | None = None) -> EvalResult:
        device = model_device(model)
        backend = HFBackend(model, tokenizer, batch_size=self.spec.batch_size,
                            add_bos_token=self.spec.add_bos_token)
        if completions:
            from lfl_ray.eval.scripted import ScriptedBackend

            backend = ScriptedBackend(backend, completions)
        with eval_mode(model), torch.no_grad(), \
                torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            return self.evaluate_backend(backend, suites, shard=shard)

    def _shard(self, suite: str, shard: tuple[int, int] | None, ref_of: str | None = None):
        """A loss suite's blocks (and the reference of ``ref_of``, default the suite's own)
        restricted to ``shard``'s slice."""
        from lfl_ray.eval.loss import DriftReference

        blocks, ref = self.items(suite), self._refs.get(ref_of or suite)
        if shard is None:
            return blocks, ref
        lo, hi = shard_bounds(len(blocks), *shard)
        if ref is not None:
            ref = DriftReference(ref.token_ids[lo:hi], ref.logprobs[lo:hi])
        return blocks.select(range(lo, hi)), ref

    def evaluate_backend(self, backend, suites=None, *,
                         shard: tuple[int, int] | None = None) -> EvalResult:
        """Run ``suites`` (default: all of the spec's) through any backend, e.g. a
        ``VLLMBackend`` serving a trial's adapter; loss and drift suites need ``HFBackend``."""
        from lfl_ray.eval.catalog.loss import KL_OF, shared_pass

        result = EvalResult()
        start = time.monotonic()
        suites = list(self.spec.suites if suites is None else suites)
        for kl_suite, loss_suite in KL_OF.items():
            if (loss_suite in suites and kl_suite in suites and kl_suite in self._refs
                    and self.spec.limit(loss_suite) == self.spec.limit(kl_suite)):
                # Same blocks (same source, limit and seed): one forward pass serves both.
                blocks, ref = self._shard(loss_suite, shard, ref_of=kl_suite)
                result.merge(shared_pass(backend, self.spec, loss_suite, blocks, ref))
                suites = [s for s in suites if s not in (loss_suite, kl_suite)]
        for suite in suites:  # __call__ lets a shard through with loss suites only
            items, ref = self._shard(suite, shard)
            result.merge(self.suites[suite].run(backend, self.spec, items, ref))
        add_aggregates(result)
        result.metrics["eval_seconds"] = time.monotonic() - start
        return result

    def compare(self, tuned: EvalResult, base: EvalResult) -> dict[str, float]:
        """Flat metrics for MLflow: each metric, its change from base with a paired SE, and
        the primary pair ``learning``/``forgetting`` (higher = learned / forgot more)."""
        out: dict[str, float] = {}
        for name, value in tuned.metrics.items():
            out[name] = value
            if name.endswith(SE_SUFFIXES) or name == "eval_seconds" or name not in base.metrics:
                continue
            delta, se = metric_difference(tuned, base, name)
            out[f"{name}_delta"] = delta
            if se is not None:
                out[f"{name}_delta_se"] = se
        # learning: how much better the target score got; forgetting: how much worse the other.
        for key, metric, sign in (("learning", self.spec.learning_metric, 1.0),
                                  ("forgetting", self.spec.forgetting_metric, -1.0)):
            if metric not in tuned.metrics or metric not in base.metrics:
                continue
            delta, se = metric_difference(tuned, base, metric)
            higher = score_direction(metric, self.spec.suites, self.spec)
            out[key] = sign * (delta if higher else 0.0 - delta)
            if se is not None:
                out[f"{key}_se"] = se
        return out


def metric_difference(a: EvalResult, b: EvalResult, metric: str) -> tuple[float, float | None]:
    """``a - b`` for ``metric``: paired, with its SE, where both results hold per-item values
    (``paired_difference``); else the difference of the two aggregates, with no SE."""
    try:
        return paired_difference(a, b, metric)
    except KeyError:
        return a.metrics[metric] - b.metrics[metric], None


def paired_difference(a: EvalResult, b: EvalResult, metric: str) -> tuple[float, float]:
    """Mean of ``a - b`` over the same items of ``metric`` and its paired SE (clustered by
    the items' documents). An aggregate (``mc_mean``) combines its parts' paired differences."""
    if metric in aggregates():
        parts = [paired_difference(a, b, m) for m in aggregates()[metric].metrics()]
        return (float(np.mean([d for d, _ in parts])),
                math.sqrt(sum(se ** 2 for _, se in parts)) / len(parts))
    if metric not in a.items or metric not in b.items:
        raise KeyError(f"{metric!r} has no per-item values in both results")
    x, y = a.items[metric], b.items[metric]
    if len(x) != len(y):
        raise ValueError(f"{metric}: results cover different items ({len(x)} vs {len(y)}); "
                         "compare results of the same spec")
    groups = a.groups.get(metric) or b.groups.get(metric)
    mean, se = paired_se(x, y, groups)
    return mean, se


def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """Rank ``rank``'s contiguous slice [lo, hi) of ``n`` items split as evenly as possible,
    so concatenating the slices in rank order restores the item order."""
    if world < 1 or not 0 <= rank < world:
        raise ValueError(f"shard: rank {rank} is not in 0..{world - 1}")
    return n * rank // world, n * (rank + 1) // world
