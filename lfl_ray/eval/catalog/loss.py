"""Loss suites on token blocks: held-out and general-text loss, and KL drift from the base.

``heldout_loss`` is the learning signal every regime has (its own held-out documents);
``general_loss`` and ``drift`` (KL(base || tuned) on general text) measure forgetting;
``heldout_drift`` is the same KL on the held-out target data, which *RL's Razor* (Shenfeld
et al. 2025) finds to predict forgetting. A KL suite shares its loss suite's blocks (same
seeded subset), so with equal limits one forward pass scores both (``shared_pass``).
"""

from __future__ import annotations

import math

from lfl_ray.errors import ConfigError
from lfl_ray.eval.items import subset_indices
from lfl_ray.eval.registry import Suite, register_suite
from lfl_ray.eval.result import EvalResult
from lfl_ray.eval.scoring import hf_model, summarize

KL_OF = {"drift": "general_loss", "heldout_drift": "heldout_loss"}
"""Each KL suite -> the loss suite whose blocks (and forward pass) it shares."""
KL_METRIC = {"drift": "drift_kl", "heldout_drift": "heldout_kl"}
BLOCKS_OF = {"heldout_loss": "heldout", "general_loss": "general", "drift": "general",
             "heldout_drift": "heldout"}


def _loader(suite: str):
    def load(spec, *, heldout=None, general=None):
        blocks = heldout if BLOCKS_OF[suite] == "heldout" else general
        if blocks is None:
            raise ConfigError(BLOCKS_OF[suite], None, f"suite {suite!r} needs TokenBlocks")
        return blocks.select(subset_indices(suite, spec, len(blocks)))
    return load


def _loss_runner(suite: str):
    def run(backend, spec, blocks, reference=None) -> EvalResult:
        from lfl_ray.eval.loss import block_losses

        values = block_losses(hf_model(backend, suite), blocks, batch_size=spec.batch_size,
                              desc=suite)
        result = EvalResult()
        summarize(result, suite, values, blocks.doc_ids)
        result.metrics[suite.replace("_loss", "_ppl")] = math.exp(result.metrics[suite])
        return result
    return run


def _kl_runner(suite: str):
    def run(backend, spec, blocks, reference) -> EvalResult:
        from lfl_ray.eval.loss import block_drift

        values = block_drift(hf_model(backend, suite), blocks, reference,
                             batch_size=spec.batch_size, desc=suite)
        result = EvalResult()
        summarize(result, KL_METRIC[suite], values, blocks.doc_ids)
        return result
    return run


def _reference(model, blocks, spec):
    from lfl_ray.eval.loss import drift_reference

    return drift_reference(model, blocks, batch_size=spec.batch_size)


def _kl_base(suite: str):
    def base(blocks, reference) -> EvalResult:
        zeros = [0.0] * len(reference.token_ids)
        metric = KL_METRIC[suite]
        return EvalResult(metrics={metric: 0.0, f"{metric}_se": 0.0}, items={metric: zeros},
                          groups={metric: list(blocks.doc_ids)})
    return base


def shared_pass(backend, spec, loss_suite: str, blocks, reference) -> EvalResult:
    """``loss_suite`` and its KL suite from one forward pass over their shared blocks."""
    from lfl_ray.eval.loss import scan_blocks

    kl_suite = next(k for k, v in KL_OF.items() if v == loss_suite)
    losses, kls = scan_blocks(hf_model(backend, loss_suite), blocks, batch_size=spec.batch_size,
                              reference=reference, desc=f"{loss_suite}+{kl_suite}")
    result = EvalResult()
    summarize(result, loss_suite, losses, blocks.doc_ids)
    result.metrics[loss_suite.replace("_loss", "_ppl")] = math.exp(result.metrics[loss_suite])
    summarize(result, KL_METRIC[kl_suite], kls, blocks.doc_ids)
    return result


for _name, _doc in (("heldout_loss", "mean token loss on the regime's held-out documents"),
                    ("general_loss", "mean token loss on general text (forgetting)")):
    register_suite(Suite(name=_name, kind="loss", load=_loader(_name), run=_loss_runner(_name),
                         scores={_name: False}, needs=BLOCKS_OF[_name], doc=_doc))
for _name, _doc in (("drift", "KL(base || tuned) on the general-text blocks"),
                    ("heldout_drift", "KL(base || tuned) on the held-out target blocks")):
    register_suite(Suite(name=_name, kind="loss", load=_loader(_name), run=_kl_runner(_name),
                         scores={KL_METRIC[_name]: False}, make_reference=_reference,
                         base_result=_kl_base(_name), needs=BLOCKS_OF[_name], doc=_doc))
