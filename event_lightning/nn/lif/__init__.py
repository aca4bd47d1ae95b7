"""Current-based leaky integrate-and-fire neurons with norse's (>= 1.0) update equations.

Dynamics are pure functions of (input, state) -> (output, state); the modules only hold weights.
Per time step ``t`` with ``a_mem = dt * tau_mem_inv`` and ``a_syn = dt * tau_syn_inv``:

    j      = i + W_in x_t + W_rec z            (current jump first; W_in x_t for all t in one matmul)
    v'     = v + a_mem (v_leak - v + j)
    i_new  = (1 - a_syn) j
    z_new  = H(v' - v_th)                      (SuperSpike surrogate)
    v_new  = (1 - sg(z_new)) v' + sg(z_new) v_reset     (sg = stop-gradient: no gradient via reset)

The leaky integrator (readout) is the same without threshold and reset. Time constants are
inverse seconds and ``dt`` is in seconds, as in norse.

``steps``: the constants, the single step and the forward / backward step cells;
``recurrent_scan``: recurrent LIF neurons over time (one fused autograd node calling the cells);
``integrator``: the leaky integrator over time (one matmul with its impulse responses);
``sparse_input``: the input projection of sparse event frames; ``layers``: :class:`LIFRecurrent`
and :class:`LeakyIntegrator`, float32 under autocast; ``classifier``: :class:`LIFClassifierNet`.

``compile`` compiles the step cells only (:meth:`LIFRecurrent.compile`): their tensors are
``[B, N]``, so the graphs do not grow with the number of time steps and compile once.
"""

from event_lightning.nn.lif.classifier import LIFClassifierNet
from event_lightning.nn.lif.integrator import leaky_integrator_scan
from event_lightning.nn.lif.layers import LeakyIntegrator, LIFRecurrent, full_precision
from event_lightning.nn.lif.recurrent_scan import LIFScanCells, lif_recurrent_scan
from event_lightning.nn.lif.sparse_input import input_projection
from event_lightning.nn.lif.steps import (
    LIFParameters,
    LIFRecurrentGradStep,
    LIFRecurrentStep,
    LIParameters,
    leaky_integrator_step,
    lif_recurrent_step,
)

__all__ = [
    "LIFClassifierNet",
    "LIFParameters",
    "LIFRecurrent",
    "LIFRecurrentGradStep",
    "LIFRecurrentStep",
    "LIFScanCells",
    "LIParameters",
    "LeakyIntegrator",
    "full_precision",
    "input_projection",
    "leaky_integrator_scan",
    "leaky_integrator_step",
    "lif_recurrent_scan",
    "lif_recurrent_step",
]
