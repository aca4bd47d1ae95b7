"""NIR export of the HG-VAE spiking encoder (:class:`event_lightning.nn.decolle.DecolleEncoder`).

Each DECOLLE layer ``i`` becomes a chain of exact NIR equivalents of its equations::

    layer{i}_q (LI)       Q[t] = beta Q[t-1] + (1 - beta) S[t]        tau = dt / (1 - beta), r = 1
    layer{i}_delay        Q[t-1] (Delay of one step, dt seconds)
    layer{i}_p (LI)       P[t] = alpha P[t-1] + (1 - alpha) Q[t-1]    tau = dt / (1 - alpha), r = 1
    layer{i}_conv         U[t] = W P[t] + b                           (Conv2d; Affine for the dense layer)
    layer{i}_spike        H(U > 0)                                    (Threshold 0)
    layer{i}_pool         max-pool of spikes = SumPool2d then
    layer{i}_pool_spike   Threshold(0.5): a window has a spike iff its sum of 0/1 spikes is >= 1

``H(maxpool(U) > 0) = maxpool(H(U > 0))`` because the Heaviside is monotone, so thresholding before
pooling is exact. A ``flatten`` node sits before the dense layer; the graph output is the dense
layer's membrane potential ``U`` at every step (the encoder returns it at ``T - 1``).

The encoder's ``warmup_first_step`` runs frame 0 through the network once before the sequence;
that equals feeding ``[x0, x0, x1, ..., x_{T-1}]`` from zero state: :func:`decolle_graph_input`
builds that sequence.
"""

from __future__ import annotations

import nir
import numpy as np
import torch
from torch import nn

from event_lightning.nir.common import array, check_dt, conv_node, conv_output_hw, full, make_graph
from event_lightning.nn.decolle import DecolleEncoder

__all__ = ["decolle_graph_input", "export_decolle_encoder"]


def decolle_graph_input(encoder: DecolleEncoder, x: torch.Tensor) -> torch.Tensor:
    """The input sequence ``[T', B, C, H, W]`` for the exported graph that reproduces ``encoder(x)``.

    With ``warmup_first_step`` frame 0 is repeated (``T' = T + 1``); otherwise ``x`` itself.
    """
    return torch.cat([x[:1], x], dim=0) if encoder.config.warmup_first_step else x


def export_decolle_encoder(encoder: DecolleEncoder, dt: float = 1e-3) -> nir.NIRGraph:
    """``encoder`` as a NIR graph: input ``[C, H, W]`` spikes -> output ``U [out_features]`` per step.

    Args:
        encoder: the DECOLLE encoder (its decays are per step, so ``dt`` only sets the time unit).
        dt: the frame duration in seconds that the time constants are expressed in.

    Returns:
        The graph, ``metadata["dt"] = dt``; ``NIRExecutor(graph)(decolle_graph_input(encoder, x))``
        gives ``U`` at every step and its last step equals ``encoder(x)``.
    """
    dt = check_dt(dt)
    config = encoder.config
    shape = tuple(int(s) for s in config.input_shape)
    nodes: dict[str, nir.NIRNode] = {"input": nir.Input(input_type={"input": np.array(shape)})}
    edges: list[tuple[str, str]] = []
    previous = "input"
    last = len(encoder.layers) - 1
    for i, layer in enumerate(encoder.layers):
        base = layer.base_layer
        if isinstance(base, nn.Linear) and len(shape) > 1:
            nodes["flatten"] = nir.Flatten(input_type={"input": np.array(shape)}, start_dim=0, end_dim=-1)
            edges.append((previous, "flatten"))
            previous, shape = "flatten", (int(np.prod(shape)),)
        name = f"layer{i}"
        nodes[f"{name}_q"] = nir.LI(
            tau=full(shape, dt / (1.0 - layer.beta)), r=full(shape, 1.0), v_leak=full(shape, 0.0)
        )
        nodes[f"{name}_delay"] = nir.Delay(delay=full(shape, dt))
        nodes[f"{name}_p"] = nir.LI(
            tau=full(shape, dt / (1.0 - layer.alpha)), r=full(shape, 1.0), v_leak=full(shape, 0.0)
        )
        edges += [(previous, f"{name}_q"), (f"{name}_q", f"{name}_delay"), (f"{name}_delay", f"{name}_p")]
        if isinstance(base, nn.Conv2d):
            bias = array(base.bias) if base.bias is not None else np.zeros(base.out_channels, np.float32)
            nodes[f"{name}_conv"] = conv_node(base, array(base.weight), bias, shape[1:])
            shape = (base.out_channels, *conv_output_hw(shape[1], shape[2], base))
        else:
            bias = array(base.bias) if base.bias is not None else np.zeros(base.out_features, np.float32)
            nodes[f"{name}_conv"] = nir.Affine(weight=array(base.weight), bias=bias)
            shape = (base.out_features,)
        edges.append((f"{name}_p", f"{name}_conv"))
        if i == last:
            nodes["output"] = nir.Output(output_type={"output": np.array(shape)})
            edges.append((f"{name}_conv", "output"))
            break
        nodes[f"{name}_spike"] = nir.Threshold(threshold=full(shape, 0.0))
        edges.append((f"{name}_conv", f"{name}_spike"))
        previous = f"{name}_spike"
        if layer.pool_size > 1:
            k = layer.pool_size
            pooled = (shape[0], shape[1] // k, shape[2] // k)
            nodes[f"{name}_pool"] = nir.SumPool2d(
                kernel_size=np.array([k, k]), stride=np.array([k, k]), padding=np.array([0, 0])
            )
            nodes[f"{name}_pool_spike"] = nir.Threshold(threshold=full(pooled, 0.5))
            edges += [(previous, f"{name}_pool"), (f"{name}_pool", f"{name}_pool_spike")]
            previous, shape = f"{name}_pool_spike", pooled
    return make_graph(nodes, edges, dt, "DecolleEncoder")
