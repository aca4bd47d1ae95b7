"""NIR export of the spiking pose UNet (:class:`event_lightning.nn.pose.snn_unet.SpikingPoseUNet`).

What is exported: the encoder half, ``static_conv -> down1 -> down2 -> down3 -> res1 -> res2``
(with the ``down3`` spikes added to the ``res2`` currents), and the spikes of any of these layers
as graph outputs (by default the five tensors the decoder half reads: ``res2`` and the four skip
connections). What is not: ``up1``, ``up2``, ``up3`` and the tail read a bilinear x2 upsampling
of their input, and NIR 1.0 has no upsampling (or transposed convolution, or reshape) primitive;
a dense ``Affine`` would be exact only on flattened tensors, with a weight of
``(C H W)^2`` entries per layer. Asking for those layers raises ``ValueError``.

Per spiking layer ``L`` (eval mode, BatchNorm folded into the bias-free conv with its running
statistics)::

    L_conv (Conv2d, BN folded) -> L_lif (LI) -> L_spike (Threshold) -> next layers
    L_spike -> L_reset (Scale) -> L_lif              fed back one step later

The decay-input neuron ``v += (x - v) / tau; s = v >= v_th; v -= s v_th`` (tau in steps, soft
reset) is an ``LI`` with ``tau = tau_steps * dt`` and ``r = 1`` whose input is the current plus
the previous step's spikes scaled by ``-(tau_steps - 1) v_th``; the ``LI`` then holds the
pre-reset potential. NIR's ``Threshold`` fires on ``v > theta``; the neuron fires on
``v >= v_th``, so ``theta`` is the largest float32 below ``v_th`` (identical in float32).
States start at zero, as in the pure SNN; the hybrid's CNN-derived initial potentials are not part
of the graph (NIR nodes carry no initial state).
"""

from __future__ import annotations

from collections.abc import Sequence

import nir
import numpy as np

from event_lightning.nir.common import check_dt, conv_node, conv_output_hw, fold_batchnorm, full, make_graph
from event_lightning.nn.pose.snn_unet import SNN_LIF_LAYERS, SpikingPoseUNet

__all__ = ["EXPORTABLE_POSE_LAYERS", "POSE_DEFAULT_OUTPUTS", "export_pose_snn"]

EXPORTABLE_POSE_LAYERS = ("static_conv", "down1", "down2", "down3", "res1", "res2")
"""The spiking layers that NIR 1.0 expresses exactly (everything before the first upsampling)."""

POSE_DEFAULT_OUTPUTS = ("static_conv", "down1", "down2", "down3", "res2")
"""Outputs by default: what the decoder half reads (``res2`` and the skip connections)."""

_INPUTS = {
    "static_conv": ("input",),
    "down1": ("static_conv",),
    "down2": ("down1",),
    "down3": ("down2",),
    "res1": ("down3",),
    "res2": ("res1",),
}


def export_pose_snn(
    net: SpikingPoseUNet,
    input_shape: Sequence[int],
    dt: float = 1e-3,
    outputs: Sequence[str] = POSE_DEFAULT_OUTPUTS,
) -> nir.NIRGraph:
    """The exactly expressible part of ``net`` as a NIR graph (see the module docstring).

    Args:
        net: the spiking UNet; its BatchNorm running statistics are folded (eval-mode behaviour).
        input_shape: ``(C, H, W)`` of one input frame (event counts per step).
        dt: seconds per step; ``tau`` (in steps) becomes ``tau * dt`` seconds.
        outputs: spiking layers whose spikes become graph outputs named ``<layer>_out``.

    Returns:
        The graph, ``metadata["dt"] = dt``; the executor maps ``[T, B, C, H, W]`` to the spikes
        ``[T, B, C_L, H_L, W_L]`` of each requested layer.

    Raises:
        ValueError: for a layer after the first upsampling (``up1``, ``up2``, ``up3``, ``tail``)
            or an unknown name.
    """
    dt = check_dt(dt)
    outputs = tuple(outputs)
    for name in outputs:
        if name not in EXPORTABLE_POSE_LAYERS:
            if name in SNN_LIF_LAYERS or name in ("tail", "out"):
                raise ValueError(
                    f"export_pose_snn: layer {name!r} cannot be expressed in NIR 1.0: it reads a bilinear x2 "
                    "upsampling, which NIR has no primitive for; exportable layers are "
                    f"{list(EXPORTABLE_POSE_LAYERS)}"
                )
            raise ValueError(
                f"export_pose_snn: unknown layer {name!r}; exportable layers are {list(EXPORTABLE_POSE_LAYERS)}"
            )
    if not outputs:
        raise ValueError("export_pose_snn: outputs is empty; name at least one of " + str(list(EXPORTABLE_POSE_LAYERS)))
    if len(input_shape) != 3:
        raise ValueError(f"export_pose_snn: input_shape is (C, H, W), found {tuple(input_shape)}")
    channels, height, width = (int(s) for s in input_shape)
    if channels != net.static_conv.conv.in_channels:
        raise ValueError(
            f"export_pose_snn: input_shape has {channels} channels, "
            f"the network takes {net.static_conv.conv.in_channels}"
        )
    # only the layers up to the deepest requested output are needed
    needed = EXPORTABLE_POSE_LAYERS[: max(EXPORTABLE_POSE_LAYERS.index(name) for name in outputs) + 1]
    p = net.lif_params
    threshold = np.nextafter(np.float32(p.v_threshold), np.float32(-np.inf))
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array(input_shape)})}
    edges: list[tuple[str, str]] = []
    shapes = {"input": (channels, height, width)}
    for name in needed:
        block = net.spiking_layers()[name]
        source = _INPUTS[name][0]
        weight, bias = fold_batchnorm(block.conv, block.bn)
        in_shape = shapes[source]
        nodes[f"{name}_conv"] = conv_node(block.conv, weight, bias, in_shape[1:])
        shape = (block.conv.out_channels, *conv_output_hw(in_shape[1], in_shape[2], block.conv))
        shapes[name] = shape
        nodes[f"{name}_lif"] = nir.LI(tau=full(shape, p.tau * dt), r=full(shape, 1.0), v_leak=full(shape, 0.0))
        nodes[f"{name}_spike"] = nir.Threshold(threshold=np.full(shape, threshold, dtype=np.float32))
        nodes[f"{name}_reset"] = nir.Scale(scale=full(shape, -(p.tau - 1.0) * p.v_threshold))
        upstream = "input" if source == "input" else f"{source}_spike"
        edges += [
            (upstream, f"{name}_conv"),
            (f"{name}_conv", f"{name}_lif"),
            (f"{name}_lif", f"{name}_spike"),
            (f"{name}_spike", f"{name}_reset"),
            (f"{name}_reset", f"{name}_lif"),
        ]
        if name == "res2":  # the residual: down3's spikes join res2's input currents
            edges.append(("down3_spike", "res2_lif"))
    for name in outputs:
        nodes[f"{name}_out"] = nir.Output(output_type={"output": np.array(shapes[name])})
        edges.append((f"{name}_spike", f"{name}_out"))
    return make_graph(nodes, edges, dt, "SpikingPoseUNet (encoder half)")
