"""The Trainer the command line builds: Lightning's, with whole-number batch limits read as counts."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl

__all__ = ["Trainer"]


class Trainer(pl.Trainer):
    """``pytorch_lightning.Trainer`` whose four ``limit_*_batches`` are typed ``int | float | None``.

    Lightning types them ``float | int | None`` and jsonargparse tries a union's types in order, so
    ``--trainer.limit_train_batches 1`` (or ``limit_train_batches: 1`` in a config) became the
    float ``1.0``, which Lightning reads as 100 % of the batches: a whole epoch where one batch was
    asked for. With the integer first, values read as Python reads them: ``1`` is one batch,
    ``1.0`` or ``0.25`` a fraction of the loader. Every other argument is Lightning's own, unchanged.

    Args:
        limit_train_batches: training batches per epoch (int) or fraction of the loader (float).
        limit_val_batches: validation batches per run (int) or fraction of the loader (float).
        limit_test_batches: test batches (int) or fraction of the loader (float).
        limit_predict_batches: prediction batches (int) or fraction of the loader (float).
    """

    def __init__(
        self,
        *,
        limit_train_batches: int | float | None = None,
        limit_val_batches: int | float | None = None,
        limit_test_batches: int | float | None = None,
        limit_predict_batches: int | float | None = None,
        **kwargs: Any,
    ) -> None:
        given = {
            "limit_train_batches": limit_train_batches,
            "limit_val_batches": limit_val_batches,
            "limit_test_batches": limit_test_batches,
            "limit_predict_batches": limit_predict_batches,
        }
        # unset ones are left out so that Lightning's PL_TRAINER_LIMIT_* environment defaults still apply
        super().__init__(**{name: value for name, value in given.items() if value is not None}, **kwargs)
