"""Data for the regimes of the study: token blocks for training, held-out learning loss and
general-text forgetting loss, from offline packages or the paper's hub datasets.

    from lfl_ray.data import DataSpec, load_regime, general_text
    data = load_regime(DataSpec("code_cpt", max_train_blocks=300))
    data.train, data.heldout, data.stats

Modules: ``regimes`` (the registry: what each regime is made of, and how to add one),
``spec`` (DataSpec), ``offline`` / ``stdlib`` / ``math_docs`` / ``hub`` (text sources),
``formatting`` (chat template, masks, packing), ``split`` (document-level splits), ``build``
(load_regime and its cache), ``decontam`` (eval problems the training data came from), ``cli``.
"""

from lfl_ray.data.blocks import IGNORE_INDEX, TokenBlocks
from lfl_ray.data.build import RegimeData, general_text, load_regime
from lfl_ray.data.regimes import REGIMES, Regime, register_regime
from lfl_ray.data.spec import DataSpec

__all__ = ["REGIMES", "Regime", "register_regime", "DataSpec", "RegimeData", "load_regime", "general_text",
           "TokenBlocks", "IGNORE_INDEX"]
