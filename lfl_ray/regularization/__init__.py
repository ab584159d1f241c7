"""Model-side regularizers the paper compares LoRA against: dropout for full finetuning
and HiddenKey for LoRA (weight decay lives in ``lfl_ray.train.optim``)."""

from lfl_ray.regularization.dropout import SUPPORTED, add_hidden_dropout, apply_model_dropout
from lfl_ray.regularization.hiddenkey import (HiddenKeyConfig, bidirectional_kl, enable_hiddenkey,
                                              hiddenkey_loss)

__all__ = ["SUPPORTED", "add_hidden_dropout", "apply_model_dropout", "HiddenKeyConfig",
           "bidirectional_kl", "enable_hiddenkey", "hiddenkey_loss"]
