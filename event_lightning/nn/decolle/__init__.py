"""DECOLLE-style LIF layers and the HG-VAE's spiking encoder (time-first ``[T, B, ...]``).

- :mod:`~event_lightning.nn.decolle.layers`: the neuron, :class:`DecolleLIFLayer` and :class:`DecolleEncoder`;
- :mod:`~event_lightning.nn.decolle.traces`: the traces over time as kernel products;
- :mod:`~event_lightning.nn.decolle.blocked`: the CPU path that runs a conv layer in blocks of steps.
"""

from event_lightning.nn.decolle.layers import (
    DecolleEncoder,
    DecolleEncoderConfig,
    DecolleLIFLayer,
    LIFState,
    fast_sigmoid_spike,
    lif_trace_step,
)
from event_lightning.nn.decolle.traces import TraceKernels, trace_kernels

__all__ = [
    "DecolleEncoder",
    "DecolleEncoderConfig",
    "DecolleLIFLayer",
    "LIFState",
    "TraceKernels",
    "fast_sigmoid_spike",
    "lif_trace_step",
    "trace_kernels",
]
