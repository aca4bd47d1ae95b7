"""DECOLLE-style LIF layers as used by the Hybrid Guided VAE (time-first ``[T, B, ...]``).

The neuron is the one vendored in the HG-VAE reference code, not the PyPI ``decolle`` package.
Per layer, with input spikes ``S_in[t]``, membrane decay ``alpha`` and synaptic decay ``beta``::

    Q[t] = beta  * Q[t-1] + (1 - beta)  * S_in[t]      synaptic trace
    P[t] = alpha * P[t-1] + (1 - alpha) * Q[t-1]      membrane trace (uses the PREVIOUS Q)
    U[t] = W * P[t] + b                               Conv2d or Linear on the trace
    S[t] = H(maxpool(U[t]) > 0)                       fast-sigmoid surrogate, slope 10

There is no reset and no refractory term, so a layer is a fixed linear filter of its input
followed by a static nonlinearity. That is why :meth:`DecolleLIFLayer.forward` can run the
trace recursion for all steps first and then apply the convolution to all ``T * B`` traces in one
call: the result equals stepping :meth:`DecolleLIFLayer.step` ``T`` times (tested), only faster.
In 1-ms bins the time constants are ``tau_m = 1 / (1 - alpha)`` and ``tau_s = 1 / (1 - beta)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from event_lightning.nn.surrogate import superspike

__all__ = [
    "DecolleEncoder",
    "DecolleEncoderConfig",
    "DecolleLIFLayer",
    "LIFState",
    "exponential_trace",
    "fast_sigmoid_spike",
    "lif_trace_step",
]


def fast_sigmoid_spike(u: torch.Tensor, slope: float = 10.0) -> torch.Tensor:
    """Heaviside ``H(u > 0)`` forward; backward ``dS/dU = 1 / (1 + slope * |u|)^2`` (decolle FastSigmoid).

    decolle's fast-sigmoid surrogate is the SuperSpike surrogate with ``alpha = slope``.
    """
    return superspike(u, slope)


class _ExponentialTrace(torch.autograd.Function):
    """``y[t] = decay * y[t-1] + gain * x[t]`` with ``y[-1] = init``, along dim 0.

    The recursion is linear, so its backward is the same recursion run backwards in time; nothing
    but the two scalars needs saving, which keeps BPTT memory at one tensor per layer.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, init: torch.Tensor, decay: float, gain: float) -> torch.Tensor:
        ctx.decay, ctx.gain = decay, gain
        y = torch.empty_like(x)
        previous = init
        for t in range(x.shape[0]):
            torch.mul(previous, decay, out=y[t])
            y[t].add_(x[t], alpha=gain)
            previous = y[t]
        return y

    @staticmethod
    def backward(ctx, grad_y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None, None]:
        carried = torch.empty_like(grad_y)
        following = torch.zeros_like(grad_y[0])
        for t in range(grad_y.shape[0] - 1, -1, -1):
            torch.mul(following, ctx.decay, out=carried[t])
            carried[t].add_(grad_y[t])
            following = carried[t]
        grad_init = carried[0] * ctx.decay if ctx.needs_input_grad[1] else None
        return carried * ctx.gain, grad_init, None, None


def exponential_trace(x: torch.Tensor, init: torch.Tensor, decay: float, gain: float) -> torch.Tensor:
    """First-order IIR filter along time: ``y[t] = decay * y[t-1] + gain * x[t]``.

    Args:
        x: ``[T, ...]`` input.
        init: ``[...]`` the value of ``y[-1]`` (the state before the first step).

    Returns:
        ``[T, ...]`` the filtered sequence.
    """
    return _ExponentialTrace.apply(x, init.expand_as(x[0]).contiguous(), float(decay), float(gain))


class LIFState(NamedTuple):
    """State of one DECOLLE LIF layer: traces ``q`` (synaptic) and ``p`` (membrane), shaped like the input."""

    q: torch.Tensor
    p: torch.Tensor


def lif_trace_step(s_in: torch.Tensor, state: LIFState, alpha: float, beta: float) -> LIFState:
    """One step of the traces (a pure function): ``Q' = bQ + (1-b)S``, ``P' = aP + (1-a)Q`` (old Q)."""
    q = beta * state.q + (1.0 - beta) * s_in
    p = alpha * state.p + (1.0 - alpha) * state.q
    return LIFState(q, p)


class DecolleLIFLayer(nn.Module):
    """A DECOLLE LIF layer around a ``Conv2d`` or ``Linear`` ``base_layer``.

    Args:
        base_layer: the synaptic weights ``W`` (and bias ``b``) applied to the membrane trace.
        alpha: membrane decay per step (``tau_m = 1 / (1 - alpha)`` steps).
        beta: synaptic decay per step.
        pool_size: max-pool window applied to ``U`` before thresholding (1 = none; conv only).
        surrogate_slope: slope of the fast-sigmoid surrogate gradient.
    """

    def __init__(
        self,
        base_layer: nn.Conv2d | nn.Linear,
        alpha: float,
        beta: float,
        pool_size: int = 1,
        surrogate_slope: float = 10.0,
    ) -> None:
        super().__init__()
        for name, value in (("alpha", alpha), ("beta", beta)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"DecolleLIFLayer: {name} must be in [0, 1), found {value}")
        if pool_size < 1:
            raise ValueError(f"DecolleLIFLayer: pool_size must be >= 1, found {pool_size}")
        if pool_size > 1 and not isinstance(base_layer, nn.Conv2d):
            raise ValueError("DecolleLIFLayer: pooling needs a Conv2d base layer")
        self.base_layer = base_layer
        self.alpha, self.beta = float(alpha), float(beta)
        self.pool_size = int(pool_size)
        self.surrogate_slope = float(surrogate_slope)

    def zero_state(self, s_in: torch.Tensor) -> LIFState:
        """All-zero traces shaped like one input step ``s_in``."""
        return LIFState(torch.zeros_like(s_in), torch.zeros_like(s_in))

    def _membrane(self, p: torch.Tensor) -> torch.Tensor:
        u = self.base_layer(p)
        return F.max_pool2d(u, self.pool_size) if self.pool_size > 1 else u

    def step(self, s_in: torch.Tensor, state: LIFState | None = None) -> tuple[torch.Tensor, torch.Tensor, LIFState]:
        """One time step. ``s_in`` is ``[B, C, H, W]`` (conv) or ``[B, F]`` (dense).

        Returns ``(spikes, u, new_state)``; ``u`` is the pooled membrane potential.
        """
        state = self.zero_state(s_in) if state is None else state
        state = lif_trace_step(s_in, state, self.alpha, self.beta)
        u = self._membrane(state.p)
        return fast_sigmoid_spike(u, self.surrogate_slope), u, state

    def traces(self, s_in: torch.Tensor, state: LIFState | None = None) -> tuple[torch.Tensor, LIFState]:
        """Membrane traces ``P [T, B, ...]`` for a whole sequence, and the final state.

        The initial state carries no gradient back (the reference detaches it too).
        """
        state = self.zero_state(s_in[0]) if state is None else state
        q = exponential_trace(s_in, state.q.detach(), self.beta, 1.0 - self.beta)
        q_previous = torch.cat([state.q.detach()[None].to(q.dtype), q[:-1]], dim=0)
        p = exponential_trace(q_previous, state.p.detach(), self.alpha, 1.0 - self.alpha)
        return p, LIFState(q[-1], p[-1])

    def forward(self, s_in: torch.Tensor, state: LIFState | None = None) -> tuple[torch.Tensor, torch.Tensor, LIFState]:
        """A whole sequence ``s_in [T, B, ...]`` -> ``(spikes [T, B, ...], u [T, B, ...], final_state)``."""
        p, final = self.traces(s_in, state)
        steps, batch = p.shape[:2]
        u = self._membrane(p.reshape(steps * batch, *p.shape[2:]))
        u = u.reshape(steps, batch, *u.shape[1:])
        return fast_sigmoid_spike(u, self.surrogate_slope), u, final


@dataclass(frozen=True)
class DecolleEncoderConfig:
    """Shape of a DECOLLE conv encoder: conv LIF layers then one dense LIF layer.

    Attributes:
        input_shape: ``(C, H, W)`` of one input frame.
        conv_channels: output channels of each conv LIF layer.
        pool_sizes: max-pool size after each conv layer (one entry per conv layer).
        kernel_size: conv kernel (stride 1, "same" padding ``kernel_size // 2``).
        out_features: width of the final dense LIF layer (the encoder output).
        alpha, beta: decays, one value for all layers or one per layer (conv layers then dense).
        surrogate_slope: fast-sigmoid slope.
        warmup_first_step: run step 0 once without gradient before the full pass, so frame 0 enters
            twice, as the reference does when it allocates its state.
    """

    input_shape: tuple[int, int, int] = (2, 32, 32)
    conv_channels: tuple[int, ...] = (32, 64, 128)
    pool_sizes: tuple[int, ...] = (2, 1, 2)
    kernel_size: int = 5
    out_features: int = 128
    alpha: float | tuple[float, ...] = 0.99
    beta: float | tuple[float, ...] = 0.97
    surrogate_slope: float = 10.0
    warmup_first_step: bool = True

    def __post_init__(self) -> None:
        if len(self.input_shape) != 3:
            raise ValueError(f"DecolleEncoderConfig.input_shape is (C, H, W); found {self.input_shape}")
        if len(self.pool_sizes) != len(self.conv_channels):
            raise ValueError(
                f"DecolleEncoderConfig: one pool size per conv layer; found {len(self.pool_sizes)} pool sizes "
                f"for {len(self.conv_channels)} conv layers"
            )
        if self.kernel_size % 2 != 1:
            raise ValueError(f"DecolleEncoderConfig.kernel_size must be odd, found {self.kernel_size}")
        for name in ("alpha", "beta"):
            value = getattr(self, name)
            if isinstance(value, Sequence) and len(value) != self.num_layers:
                raise ValueError(
                    f"DecolleEncoderConfig.{name}: give one value or {self.num_layers} (one per layer); "
                    f"found {len(value)}"
                )

    @property
    def num_layers(self) -> int:
        return len(self.conv_channels) + 1

    def decay(self, name: str, layer: int) -> float:
        value = getattr(self, name)
        return float(value[layer] if isinstance(value, Sequence) else value)

    @property
    def flat_features(self) -> int:
        """Input width of the dense layer: ``C_last * H' * W'`` after all pools."""
        _, height, width = self.input_shape
        for pool in self.pool_sizes:
            height, width = height // pool, width // pool
        return (self.conv_channels[-1] if self.conv_channels else self.input_shape[0]) * height * width


class DecolleEncoder(nn.Module):
    """Conv LIF layers -> flatten -> dense LIF layer; reads ``U`` of the dense layer at ``t = T - 1``.

    Biases start at zero and weights orthogonal (the state before LSUV initialisation).
    """

    def __init__(self, config: DecolleEncoderConfig) -> None:
        super().__init__()
        self.config = config
        layers: list[DecolleLIFLayer] = []
        channels = config.input_shape[0]
        for i, (out_channels, pool) in enumerate(zip(config.conv_channels, config.pool_sizes, strict=True)):
            conv = nn.Conv2d(channels, out_channels, config.kernel_size, stride=1, padding=config.kernel_size // 2)
            layers.append(self._layer(conv, i, pool))
            channels = out_channels
        dense = nn.Linear(config.flat_features, config.out_features)
        layers.append(self._layer(dense, len(config.conv_channels), 1))
        self.layers = nn.ModuleList(layers)
        for layer in self.layers:
            nn.init.orthogonal_(layer.base_layer.weight)
            nn.init.zeros_(layer.base_layer.bias)

    def _layer(self, base: nn.Conv2d | nn.Linear, index: int, pool: int) -> DecolleLIFLayer:
        c = self.config
        return DecolleLIFLayer(base, c.decay("alpha", index), c.decay("beta", index), pool, c.surrogate_slope)

    @staticmethod
    def _prepare(layer: DecolleLIFLayer, spikes: torch.Tensor) -> torch.Tensor:
        # [T, B, C, H, W] spikes feed a Linear layer flattened per step.
        if isinstance(layer.base_layer, nn.Linear) and spikes.dim() > 3:
            return spikes.flatten(2)
        return spikes

    def _warmup_states(self, x0: torch.Tensor) -> list[LIFState | None]:
        if not self.config.warmup_first_step:
            return [None] * len(self.layers)
        states: list[LIFState | None] = []
        with torch.no_grad():
            spikes = x0
            for layer in self.layers:
                spikes = self._prepare(layer, spikes[None])[0]
                spikes, _, state = layer.step(spikes)
                states.append(state)
        return states

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [T, B, C, H, W]`` (spike counts) -> ``U [B, out_features]`` of the dense layer at ``T - 1``."""
        return self.membrane_at_last_step(x, all_layers=False)[-1]

    def membrane_at_last_step(self, x: torch.Tensor, all_layers: bool = True) -> list[torch.Tensor]:
        """Pooled membrane potential of each layer at ``t = T - 1`` (only the last one if not ``all_layers``).

        Each entry is ``[B, C, H', W']`` for conv layers and ``[B, out_features]`` for the dense layer.
        """
        if x.dim() != 5 or tuple(x.shape[2:]) != tuple(self.config.input_shape):
            raise ValueError(
                f"DecolleEncoder expects [T, B, {', '.join(map(str, self.config.input_shape))}] input; "
                f"found {tuple(x.shape)}"
            )
        states = self._warmup_states(x[0])
        readouts: list[torch.Tensor] = []
        spikes = x
        last = len(self.layers) - 1
        for i, (layer, state) in enumerate(zip(self.layers, states, strict=True)):
            spikes = self._prepare(layer, spikes)
            if i == last:
                # Only U[T-1] of the dense layer is read: filter the traces, skip the other T-1 products.
                p, _ = layer.traces(spikes, state)
                readouts.append(layer._membrane(p[-1]))
            else:
                spikes, u, _ = layer(spikes, state)
                if all_layers:
                    readouts.append(u[-1])
        return readouts
