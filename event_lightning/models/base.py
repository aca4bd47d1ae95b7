"""What every event_lightning LightningModule shares: in-place compilation of its networks."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
from torch import nn


class CompilableModule(pl.LightningModule):
    """A LightningModule whose networks can be compiled with ``compile: true``.

    Subclasses list the submodules to compile in :meth:`compile_targets` (by default the
    attribute ``net``). Compilation uses the in-place ``nn.Module.compile()``, so state-dict keys
    are the same compiled or not and a checkpoint loads either way; the LightningModule itself is
    never compiled because ``self.log`` inside a compiled module breaks on Lightning 2.6.
    """

    def __init__(self, compile: bool = False) -> None:
        super().__init__()
        self.compile_networks = compile
        self._compiled = False

    def compile_targets(self) -> list[nn.Module]:
        """The submodules that ``compile: true`` compiles."""
        return [self.net]

    def configure_model(self) -> None:
        # Lightning calls this for every stage and before load_state_dict: it must be idempotent.
        if self.compile_networks and not self._compiled:
            for module in self.compile_targets():
                module.compile()
            self._compiled = True


def mark_batch_dynamic(*tensors: torch.Tensor) -> None:
    """Tell ``torch.compile`` that dim 0 of ``tensors`` is a batch size that varies.

    One graph then serves every batch (the last partial one, DDP's uneven shards, a batch of one)
    without a recompile. The size is *unbacked*: dynamo neither specialises the sizes 0 and 1 (as
    it does for ``mark_dynamic``) nor guards on its value. A network that reshapes a batch must
    keep whole samples provable (reshape ``[B, S, ...]`` to ``[B * S, ...]`` inside the graph
    rather than receiving ``[B * S, ...]``).
    """
    for tensor in tensors:
        torch._dynamo.decorators.mark_unbacked(tensor, 0)
