"""Optimiser hyperparameters changed on resume reach the restored optimisers.

Lightning builds the optimisers from the (new) hyperparameters and then loads the checkpoint's
optimiser and scheduler states over them, so a ``--model.init_args.lr`` given on resume would be
recorded in ``config.yaml`` and ``hparams.yaml`` but not used. :class:`ResumedOptimiserSettings`
remembers the freshly built parameter groups (``on_fit_start``, before the restore) and writes
them back over the restored ones (``on_train_start``, after it):

* every group setting other than the learning rate (weight decay, betas, momentum, eps, ...) takes
  the fresh value;
* the learning rate keeps its place on the schedule: ``lr = restored lr x new base / old base``,
  where the base is the group's ``initial_lr`` (set by a scheduler) or its lr; schedulers' base
  rates become the new bases and a ``LambdaLR`` recomputes its rate (its factor function is the
  freshly built one, so a changed drop interval applies at once).

The optimiser state itself (moments, step counts) stays as restored.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch.optim.lr_scheduler import LambdaLR

_RATE_KEYS = ("lr", "initial_lr")


def _group_settings(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    return [{k: v for k, v in group.items() if k != "params"} for group in optimizer.param_groups]


def _base_rate(group: dict[str, Any]) -> float:
    return float(group.get("initial_lr", group["lr"]))


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return not torch.equal(torch.as_tensor(a), torch.as_tensor(b))
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return list(a) != list(b)
    return a != b


class ResumedOptimiserSettings(pl.Callback):
    """Puts the resumed run's optimiser settings over the ones restored from the checkpoint.

    Added by the CLI only when a resume changed an optimiser hyperparameter (see
    :mod:`event_lightning.resume_rules`).
    """

    def __init__(self) -> None:
        self._fresh: list[list[dict[str, Any]]] | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # the optimisers exist (strategy setup) and the checkpoint's states are not loaded yet
        self._fresh = [_group_settings(optimizer) for optimizer in trainer.optimizers]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._fresh is None:
            return
        for index, (optimizer, fresh_groups) in enumerate(zip(trainer.optimizers, self._fresh, strict=True)):
            if len(optimizer.param_groups) != len(fresh_groups):
                raise RuntimeError(
                    f"optimiser {index}: the checkpoint has {len(optimizer.param_groups)} parameter groups, the "
                    f"resumed model builds {len(fresh_groups)}; the new optimiser settings cannot be applied"
                )
            for group, fresh in zip(optimizer.param_groups, fresh_groups, strict=True):
                for key, value in fresh.items():
                    if key not in _RATE_KEYS and _differs(group.get(key), value):
                        group[key] = value
                old_base, new_base = _base_rate(group), _base_rate(fresh)
                if old_base != new_base:
                    group["lr"] = group["lr"] * new_base / old_base if old_base else new_base
                    if "initial_lr" in group:
                        group["initial_lr"] = new_base
        for config in trainer.lr_scheduler_configs:
            scheduler = config.scheduler
            groups = scheduler.optimizer.param_groups
            if hasattr(scheduler, "base_lrs"):
                scheduler.base_lrs = [_base_rate(group) for group in groups]
            if isinstance(scheduler, LambdaLR):  # closed form: base rate x factor(epoch)
                for group, base, factor in zip(groups, scheduler.base_lrs, scheduler.lr_lambdas, strict=True):
                    group["lr"] = base * factor(scheduler.last_epoch)
            scheduler._last_lr = [group["lr"] for group in groups]
        self._fresh = None
