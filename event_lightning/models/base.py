"""What every event_lightning LightningModule shares: in-place compilation of its networks, and the heap
setting of CPU training."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
from torch import nn

from event_lightning.nn.cpu_memory import keep_freed_heap_memory

# torch.compile's modes ("default" is torch's own default)
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class CompilableModule(pl.LightningModule):
    """A LightningModule whose networks can be compiled with ``compile: true``.

    Subclasses list the submodules to compile in :meth:`compile_targets` (by default the
    attribute ``net``). Compilation uses the in-place ``nn.Module.compile()``, so state-dict keys
    are the same compiled or not and a checkpoint loads either way; the LightningModule itself is
    never compiled because ``self.log`` inside a compiled module breaks on Lightning 2.6. A target
    may override ``compile`` to compile parts of itself (the LIF layer compiles its step cells).

    Args:
        compile: compile the targets in :meth:`configure_model`.
        compile_mode: ``torch.compile``'s ``mode``, one of :data:`COMPILE_MODES`
            (``reduce-overhead`` captures CUDA graphs on a GPU).
    """

    def __init__(self, compile: bool = False, compile_mode: str = "default") -> None:
        super().__init__()
        if compile_mode not in COMPILE_MODES:
            raise ValueError(f"model.compile_mode must be one of {list(COMPILE_MODES)}, found {compile_mode!r}")
        self.compile_networks = compile
        self.compile_mode = compile_mode
        self._compiled = False

    def on_fit_start(self) -> None:
        if self.device.type == "cpu":
            keep_freed_heap_memory()

    def compile_targets(self) -> list[nn.Module]:
        """The submodules that ``compile: true`` compiles."""
        return [self.net]

    def compile_options(self) -> dict[str, Any]:
        """Keyword arguments of every target's ``compile`` call."""
        return {} if self.compile_mode == "default" else {"mode": self.compile_mode}

    def configure_model(self) -> None:
        # Lightning calls this for every stage and before load_state_dict: it must be idempotent.
        if self.compile_networks and not self._compiled:
            for module in self.compile_targets():
                module.compile(**self.compile_options())
            self._compiled = True


def run_compiled(net: nn.Module, *batch: torch.Tensor, **options: Any) -> Any:
    """``net(*batch, **options)`` for a compiled ``net``, so that one graph serves every training step
    and one every evaluation step.

    * Dim 0 of every batch tensor is marked as a batch size that varies: the last partial batch,
      DDP's uneven shards or a batch of one reuse the graph. The size is *unbacked*: dynamo
      neither specialises the sizes 0 and 1 (as it does for ``mark_dynamic``) nor guards on its
      value. A network that reshapes a batch must keep whole samples provable (reshape
      ``[B, S, ...]`` to ``[B * S, ...]`` inside the graph rather than receiving ``[B * S, ...]``).
    * Evaluation runs under ``no_grad`` also where Lightning uses inference mode (``validate``,
      ``test``; ``fit`` validates under ``no_grad``): a graph guards on whether its inputs are
      inference tensors, so the batch is cloned out of inference mode instead of compiling a
      second evaluation graph.
    """
    if torch.is_inference_mode_enabled():
        with torch.inference_mode(False), torch.no_grad():
            return run_compiled(net, *(tensor.clone() for tensor in batch), **options)
    for tensor in batch:
        torch._dynamo.decorators.mark_unbacked(tensor, 0)
    return net(*batch, **options)
