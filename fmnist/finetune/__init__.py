"""ResNet-18 fine-tuning: registries of modes, optimizers and schedules, the training loop, checkpoints.

``MODES`` (which parameters train), ``OPTIMIZERS`` and ``SCHEDULES`` map a name to a function; a new
one is one decorated function (a mode declares ``fn.cost``, its rough seconds per epoch of 60k images at
32 px on 2 cores, for executors). ``fit`` is the library loop: it returns values and never logs to MLflow
(``fmnist.steps.finetune`` does that).
"""

from __future__ import annotations

from .base import MODES, OPTIMIZERS, SCHEDULES
from . import modes, optim  # noqa: E402,F401  (registration side effects)
from .augment import augment_batch  # noqa: E402
from .checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from .train import FitConfig, FitResult, SplitData, evaluate, export_model, fit, predict, predict_proba, train_one_epoch  # noqa: E402

__all__ = ["MODES", "OPTIMIZERS", "SCHEDULES", "FitConfig", "FitResult", "SplitData", "augment_batch", "evaluate",
           "export_model", "fit", "load_checkpoint", "predict", "predict_proba", "save_checkpoint",
           "train_one_epoch"]
