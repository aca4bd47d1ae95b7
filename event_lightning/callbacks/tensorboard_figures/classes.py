"""Labels and class predictions of validation batches, for the figures that show them.

The predictions come from a forward hook on the LightningModule itself: every classifier of this
package calls ``self(...)`` once per step and gets scores ``[B, num_classes]``, so the figures see
what the step saw without a second forward pass. The hook keeps references to device tensors only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

# Dict keys of this package's batches that hold class labels (classification collates; HG-VAE).
LABEL_KEYS = ("label", "target")


def _is_label_vector(value: Any) -> bool:
    return isinstance(value, torch.Tensor) and value.dim() == 1 and not value.is_floating_point()


def batch_labels(batch: Any) -> torch.Tensor | None:
    """Integer class labels ``[B]`` of a batch, or None when it carries none.

    Looked for as a ``label`` attribute (event-token batches), a ``label`` / ``target`` dict key, or
    the last element of a tuple / list (``(frames, lengths, labels)``).
    """
    if _is_label_vector(getattr(batch, "label", None)):
        return batch.label
    if isinstance(batch, Mapping):
        found = [batch[key] for key in LABEL_KEYS if _is_label_vector(batch.get(key))]
        return found[0] if found else None
    if isinstance(batch, Sequence) and not isinstance(batch, str) and batch and _is_label_vector(batch[-1]):
        return batch[-1]
    return None


def class_predictions(scores: Any, labels: torch.Tensor | None) -> torch.Tensor | None:
    """``argmax`` of scores ``[B, C]`` matching ``labels [B]``; None when either is missing or they differ in B."""
    if labels is None or not isinstance(scores, torch.Tensor) or scores.dim() != 2:
        return None
    if scores.shape[0] != labels.shape[0]:
        return None
    return scores.argmax(dim=-1)


class ForwardOutput:
    """A forward hook on a module that keeps its latest output (detached) while started."""

    def __init__(self) -> None:
        self.output: Any = None
        self._handle: Any = None

    def start(self, module: nn.Module) -> None:
        self.stop()
        self.output = None
        self._handle = module.register_forward_hook(self._keep)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    @property
    def active(self) -> bool:
        return self._handle is not None

    def _keep(self, module: nn.Module, args: tuple, output: Any) -> None:
        self.output = output.detach() if isinstance(output, torch.Tensor) else output


def sample_label(b: int, label: int | None, prediction: int | None, class_names: Sequence[str] | None) -> str:
    """``#b``, ``label L`` and ``pred P`` on three lines (what is known of them); class names when given."""

    def name(k: int) -> str:
        return str(class_names[k]) if class_names is not None and 0 <= k < len(class_names) else str(k)

    parts = [f"#{b}"]
    if label is not None:
        parts.append(f"label {name(label)}")
    if prediction is not None:
        parts.append(f"pred {name(prediction)}" + ("" if label is None or label == prediction else " (wrong)"))
    return "\n".join(parts)
