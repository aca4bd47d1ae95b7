"""Mean per-joint position error (MPJPE) for 2D (pixels) and 3D (mm) poses, per time step.

Reference semantics (hybrid_pose spec §3): per sample, the L2 error of every joint, averaged
over the joints that have a label (NaN targets are ignored); then averaged over samples. A
sequence model reports the per-step curve, its mean over the window and its last step.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics import Metric

__all__ = ["MPJPE", "per_sample_joint_error"]


def per_sample_joint_error(pred: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Joint-averaged L2 error per sample.

    Args:
        pred, target: ``[..., J, D]`` positions (D = 2 pixels or 3 mm). NaN in ``target`` (or in
            ``pred``, e.g. a failed triangulation) marks a joint to ignore.

    Returns:
        ``(error [...], valid [...])``: the nanmean over joints, and whether any joint counted.
    """
    distance = torch.linalg.vector_norm(pred - target, dim=-1)
    valid = torch.isfinite(distance)
    count = valid.sum(-1)
    error = torch.where(valid, distance, torch.zeros_like(distance)).sum(-1) / count.clamp(min=1)
    return error, count > 0


class MPJPE(Metric):
    """MPJPE per time step of a window, accumulated over batches.

    ``update(pred, target)`` takes ``[B, T, J, D]`` (or ``[B, J, D]``, one step). ``n_steps=None``
    takes ``T`` from the first update after a reset.
    ``compute()`` returns the ``[n_steps]`` curve: for each step, the mean over samples of the
    joint-averaged error (samples with no labelled joint are skipped and not counted).
    :meth:`window_mean` and :meth:`last_step` give the two reported summaries.
    """

    full_state_update = False
    higher_is_better = False
    is_differentiable = False

    def __init__(self, n_steps: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        if n_steps is not None and n_steps < 1:
            raise ValueError(f"MPJPE.n_steps must be >= 1, found {n_steps}")
        self.n_steps = n_steps
        size = n_steps or 0
        self.add_state("error_sum", default=torch.zeros(size, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros(size, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred: Tensor, target: Tensor) -> None:
        if pred.shape != target.shape:
            raise ValueError(f"MPJPE: pred and target shapes differ: {tuple(pred.shape)} vs {tuple(target.shape)}")
        if pred.ndim == 3:
            pred, target = pred.unsqueeze(1), target.unsqueeze(1)
        steps = self.error_sum.numel() or self.n_steps or (pred.shape[1] if pred.ndim == 4 else 0)
        if pred.ndim != 4 or pred.shape[1] != steps:
            raise ValueError(
                f"MPJPE expects [B, {steps}, J, D] (the steps of its first update, or "
                f"n_steps={self.n_steps}); found {tuple(pred.shape)}"
            )
        if self.error_sum.numel() == 0:
            self.error_sum = torch.zeros(steps, dtype=torch.float64, device=pred.device)
            self.count = torch.zeros(steps, dtype=torch.float64, device=pred.device)
        error, valid = per_sample_joint_error(pred.double(), target.double())
        self.error_sum += torch.where(valid, error, torch.zeros_like(error)).sum(0)
        self.count += valid.sum(0).double()

    def compute(self) -> Tensor:
        """Per-step curve ``[T]`` (torchmetrics squeezes a one-step curve to a scalar)."""
        return self.error_sum / self.count

    @staticmethod
    def window_mean(curve: Tensor) -> Tensor:
        """Mean of a per-step curve over the window (the reference's "avg10")."""
        return curve.reshape(-1).nanmean()

    @staticmethod
    def last_step(curve: Tensor) -> Tensor:
        """Error at the last step of the window."""
        return curve.reshape(-1)[-1]
