"""NIR export of the recurrent LIF classifier (:class:`event_lightning.nn.lif.LIFClassifierNet`).

Graph (names as written)::

    input [P, H, W] -> flatten -> input_weights (Linear) -> lif (CubaLIF) -> fc_out (Linear)
        -> readout (CubaLI) -> output
    lif -> recurrent_weights (Linear) -> lif          the recurrent edge (previous step's spikes)

Parameter mapping (norse >= 1.0 equations, ``a = dt * tau_inv``): ``tau_syn = 1 / tau_syn_inv``
and ``tau_mem = 1 / tau_mem_inv`` in seconds, ``r = 1``, ``v_leak``, ``v_threshold = v_th``,
``v_reset``, and ``w_in = 1 / (dt * tau_syn_inv)``: norse adds the whole projected input to the
synaptic current in one step, while a forward-Euler step of ``tau_syn dI/dt = -I + w_in S`` adds
``dt / tau_syn * w_in * S``; the two agree for this ``w_in``.
"""

from __future__ import annotations

from collections.abc import Sequence

import nir
import numpy as np

from event_lightning.nir.common import array, check_dt, full, make_graph
from event_lightning.nn.lif import LIFClassifierNet

__all__ = ["export_lif_classifier"]


def export_lif_classifier(net: LIFClassifierNet, input_shape: Sequence[int] | None = None) -> nir.NIRGraph:
    """``net`` as a NIR graph with ``metadata["dt"]`` = the network's own ``dt``.

    Args:
        net: the classifier network.
        input_shape: shape of one input frame without time and batch, e.g. ``(P, H, W)``; it is
            flattened in that order as the network does. ``None``: the flat ``(input_features,)``.

    Returns:
        The graph; :class:`event_lightning.nir.executor.NIRExecutor` maps ``[T, B, *input_shape]``
        frames to the readout voltages ``[T, B, num_classes]`` of ``net(frames)``.
    """
    recurrent = net.lif
    hidden, features = recurrent.input_weights.shape
    shape = (features,) if input_shape is None else tuple(int(s) for s in input_shape)
    if int(np.prod(shape)) != features:
        raise ValueError(
            f"export_lif_classifier: input_shape {shape} has {int(np.prod(shape))} elements, "
            f"the network takes {features} input features"
        )
    dt = check_dt(recurrent.step.dt)
    p, readout = recurrent.step.p, net.readout.p
    classes = net.fc_out.weight.shape[0]
    lif = nir.CubaLIF(
        tau_syn=full([hidden], 1.0 / p.tau_syn_inv),
        tau_mem=full([hidden], 1.0 / p.tau_mem_inv),
        r=full([hidden], 1.0),
        v_leak=full([hidden], p.v_leak),
        v_threshold=full([hidden], p.v_th),
        v_reset=full([hidden], p.v_reset),
        w_in=full([hidden], 1.0 / (dt * p.tau_syn_inv)),
    )
    li = nir.CubaLI(
        tau_syn=full([classes], 1.0 / readout.tau_syn_inv),
        tau_mem=full([classes], 1.0 / readout.tau_mem_inv),
        r=full([classes], 1.0),
        v_leak=full([classes], readout.v_leak),
        w_in=full([classes], 1.0 / (dt * readout.tau_syn_inv)),
    )
    nodes = {
        "input": nir.Input(input_type={"input": np.array(shape)}),
        "flatten": nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1),
        "input_weights": nir.Linear(weight=array(recurrent.input_weights)),
        "lif": lif,
        # the mask keeps autapses out exactly as the forward pass does
        "recurrent_weights": nir.Linear(weight=array(recurrent.recurrent_weights * recurrent.recurrent_mask)),
        "fc_out": nir.Linear(weight=array(net.fc_out.weight)),
        "readout": li,
        "output": nir.Output(output_type={"output": np.array([classes])}),
    }
    edges = [
        ("input", "flatten"),
        ("flatten", "input_weights"),
        ("input_weights", "lif"),
        ("lif", "recurrent_weights"),
        ("recurrent_weights", "lif"),
        ("lif", "fc_out"),
        ("fc_out", "readout"),
        ("readout", "output"),
    ]
    if net.fc_out.bias is not None:
        nodes["fc_out"] = nir.Affine(weight=array(net.fc_out.weight), bias=array(net.fc_out.bias))
    return make_graph(nodes, edges, dt, "LIFClassifierNet")
