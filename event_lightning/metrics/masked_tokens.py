"""Accuracy of masked-token prediction, counting only the scored positions."""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["MaskedTokenAccuracy"]


class MaskedTokenAccuracy(Metric):
    """Share of scored positions whose arg-max class is the target, pooled over everything seen.

    A target equal to ``ignore_index`` is not scored.  The same number as torchmetrics'
    ``MulticlassAccuracy(average="micro", ignore_index=...)``, without its boolean-mask indexing,
    which waits on the host every step.
    """

    full_state_update = False

    def __init__(self, ignore_index: int = -1) -> None:
        super().__init__()
        self.ignore_index = ignore_index
        self.add_state("correct", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("scored", default=torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, logits: Tensor, target: Tensor) -> None:
        """``logits`` ``[..., C]``, ``target`` int ``[...]`` (``ignore_index``: not scored)."""
        scored = target != self.ignore_index
        # Out-of-place: states reset under inference mode (trainer.validate) stay usable in training.
        self.correct = self.correct + ((logits.argmax(dim=-1) == target) & scored).sum()
        self.scored = self.scored + scored.sum()

    def compute(self) -> Tensor:
        return self.correct.float() / self.scored.clamp(min=1)
