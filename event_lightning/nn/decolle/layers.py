"""DECOLLE-style LIF layers as used by the Hybrid Guided VAE (time-first ``[T, B, ...]``).

The neuron is the one vendored in the HG-VAE reference code, not the PyPI ``decolle`` package.
Per layer, with input spikes ``S_in[t]``, membrane decay ``alpha`` and synaptic decay ``beta``::

    Q[t] = beta  * Q[t-1] + (1 - beta)  * S_in[t]      synaptic trace
    P[t] = alpha * P[t-1] + (1 - alpha) * Q[t-1]      membrane trace (uses the PREVIOUS Q)
    U[t] = W * P[t] + b                               Conv2d or Linear on the trace
    S[t] = H(maxpool(U[t]) > 0)                       fast-sigmoid surrogate, slope 10

There is no reset and no refractory term, so a layer is a fixed linear filter of its input
followed by a static nonlinearity. :meth:`DecolleLIFLayer.forward` therefore computes the traces
of all ``T`` steps as one product with the filter's impulse response over time
(:func:`trace_kernels`: ``P = K @ S`` plus the decay of the initial state) and applies the
convolution to all ``T * B`` traces in one call. The result equals stepping
:meth:`DecolleLIFLayer.step` ``T`` times to float rounding (tested); there is no loop over time,
so a compiled graph does not grow with ``T`` and the backward pass is one more product (``K^T``).
On a CPU in eager mode (no autocast) a conv layer instead runs traces, conv and max-pool in blocks
of steps that carry the traces' state from one block to the next (:mod:`~event_lightning.nn.decolle.blocked`):
the same values and gradients, with less trace arithmetic and no ``[T * B, ...]`` temporaries that
glibc would map and page-fault in afresh at every step.
In 1-ms bins the time constants are ``tau_m = 1 / (1 - alpha)`` and ``tau_s = 1 / (1 - beta)``.

Precision: traces, membrane potentials and spikes are at least float32 whatever the input dtype.
The trace products run with autocast off; under bf16/fp16 autocast only the conv/linear runs in
low precision, and its output ``U`` is converted back to float32 before pooling and thresholding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from event_lightning.nn.decolle import blocked as decolle_blocked
from event_lightning.nn.decolle.traces import (
    TraceKernels,
    channels_last_steps,
    flatten_steps,
    trace_kernels,
    unflatten_steps,
)
from event_lightning.nn.surrogate import superspike


def fast_sigmoid_spike(u: torch.Tensor, slope: float = 10.0) -> torch.Tensor:
    """Heaviside ``H(u > 0)`` forward; backward ``dS/dU = 1 / (1 + slope * |u|)^2`` (decolle FastSigmoid).

    decolle's fast-sigmoid surrogate is the SuperSpike surrogate with ``alpha = slope``.
    """
    return superspike(u, slope)


def _has_forward_hooks(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks)


def _at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """Counts (uint8/int16), bf16 or fp16 as float32; float32 and float64 as they are."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


class LIFState(NamedTuple):
    """State of one DECOLLE LIF layer: traces ``q`` (synaptic) and ``p`` (membrane), shaped like the input.

    ``p = None`` stands for an all-zero membrane trace (the warm-up state); the sequence methods
    (:meth:`DecolleLIFLayer.traces`, :meth:`~DecolleLIFLayer.last_trace`) accept it.
    """

    q: torch.Tensor
    p: torch.Tensor | None


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
        """All-zero traces shaped like one input step ``s_in`` (at least float32)."""
        zeros = torch.zeros_like(s_in, dtype=torch.promote_types(s_in.dtype, torch.float32))
        return LIFState(zeros, zeros)

    def _membrane(self, p: torch.Tensor) -> torch.Tensor:
        # the traces are at least float32; weights held in bf16 ("bf16-true") take the trace in their dtype
        p = p.to(self.base_layer.weight.dtype)
        if p.device.type == "cpu" and p.dim() == 4:
            # On a CPU the conv, its backward and the max-pool run 1.5-3x faster on channels-last
            # images, with the same values; the spikes keep that layout (the next trace product reads
            # them whatever their layout).
            p = p.contiguous(memory_format=torch.channels_last)
        u = self.base_layer(p)
        u = F.max_pool2d(u, self.pool_size) if self.pool_size > 1 else u
        # under autocast the conv/linear output is bf16/fp16; the threshold acts on float32 (max is exact)
        return _at_least_float32(u)

    def resting_spikes(self, s_in: torch.Tensor) -> torch.Tensor:
        """The output spikes of a step whose membrane trace is zero (``U = b``) for input ``s_in``
        ``[B, C, H, W]`` or ``[B, F]``: ``H(b)`` per channel, shaped like the layer's output; no gradient.
        """
        bias = self.base_layer.bias.detach()
        fired = (bias > 0).to(s_in.dtype)
        if isinstance(self.base_layer, nn.Linear):
            return fired.expand(s_in.shape[0], -1)
        height, width = (size // self.pool_size for size in s_in.shape[-2:])
        return fired[:, None, None].expand(s_in.shape[0], -1, height, width)

    def step(self, s_in: torch.Tensor, state: LIFState | None = None) -> tuple[torch.Tensor, torch.Tensor, LIFState]:
        """One time step. ``s_in`` is ``[B, C, H, W]`` (conv) or ``[B, F]`` (dense).

        Returns ``(spikes, u, new_state)``; ``u`` is the pooled membrane potential.
        """
        s_in = _at_least_float32(s_in)
        state = self.zero_state(s_in) if state is None else state
        state = lif_trace_step(s_in, state, self.alpha, self.beta)
        u = self._membrane(state.p)
        return fast_sigmoid_spike(u, self.surrogate_slope), u, state

    def _kernels(self, s_in: torch.Tensor) -> TraceKernels:
        dtype = torch.promote_types(s_in.dtype, torch.float32)  # counts are traced in float32
        return trace_kernels(s_in.shape[0], self.alpha, self.beta, dtype=dtype, device=s_in.device)

    def traces(self, s_in: torch.Tensor, state: LIFState | None = None) -> tuple[torch.Tensor, LIFState]:
        """Membrane traces ``P [T, B, ...]`` for a whole sequence, and the final state.

        The initial state carries no gradient back (the reference detaches it too). ``P`` has the
        memory layout of ``s_in`` (channels-last spikes give channels-last traces).
        """
        s_in = _at_least_float32(s_in)
        kernels = self._kernels(s_in)
        channels_last = channels_last_steps(s_in)
        flat = flatten_steps(s_in, channels_last)
        with torch.autocast(s_in.device.type, enabled=False):
            p = kernels.membrane @ flat
            q_last = kernels.synaptic_last[None] @ flat
            if state is not None:
                # rank-one updates in place: the mm's backward does not need its output, and two
                # [T, N] temporaries per term (product, sum) would cost as much as the mm itself
                q0 = flatten_steps(state.q.detach()[None], channels_last)[0]
                p.addr_(kernels.membrane_from_q, q0)
                q_last = q_last + kernels.synaptic_last_from_q * q0
                if state.p is not None:
                    p.addr_(kernels.membrane_from_p, flatten_steps(state.p.detach()[None], channels_last)[0])
        p = unflatten_steps(p, s_in.shape[1:], channels_last)
        return p, LIFState(unflatten_steps(q_last, s_in.shape[1:], channels_last)[0], p[-1])

    def last_trace(self, s_in: torch.Tensor, state: LIFState | None = None) -> torch.Tensor:
        """``P[T-1]`` alone, ``[B, ...]``: what a layer read only at the last step needs.

        A dense layer also takes a conv layer's spikes ``[T, B, C, H, W]`` as they are: the trace is
        flattened per sample after the sum over time (the state is then ``[B, C * H * W]``).
        """
        s_in = _at_least_float32(s_in)
        kernels = self._kernels(s_in)
        channels_last = channels_last_steps(s_in)
        with torch.autocast(s_in.device.type, enabled=False):
            p = kernels.membrane[-1:] @ flatten_steps(s_in, channels_last)
            p = unflatten_steps(p, s_in.shape[1:], channels_last)[0]
            return self._with_initial_state(p, state, kernels)

    def last_trace_of_layer(
        self,
        layer: DecolleLIFLayer,
        s_in: torch.Tensor,
        layer_state: LIFState | None = None,
        state: LIFState | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`last_trace` of the spikes that ``layer``, the layer before, fires for its input
        ``s_in [T, B, ...]`` from ``layer_state``; and that layer's pooled potentials at the last step
        ``U[T-1] [B, ...]``.

        The same values and gradients as ``last_trace(layer(s_in, layer_state)[0], state)`` (to float
        rounding), without storing the spikes (see :meth:`spikes_weighted_over_time`).
        """
        kernels = self._kernels(s_in)
        summed, u_last = layer.spikes_weighted_over_time(s_in, kernels.membrane[-1], layer_state)
        with torch.autocast(s_in.device.type, enabled=False):
            return self._with_initial_state(summed, state, kernels), u_last

    def spikes_weighted_over_time(
        self, s_in: torch.Tensor, weights: torch.Tensor, state: LIFState | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``sum_t weights[t] S[t]`` of this layer's output spikes ``S`` for ``s_in [T, B, ...]`` (``weights [T]``),
        and the pooled potentials at the last step ``U[T-1]``; both ``[B, ...]``, at least float32.

        The spikes are never stored, and their gradient costs one ``[T, ...]`` buffer instead of three
        (:func:`~event_lightning.nn.decolle.blocked.spikes_weighted_over_time`). On the blocked CPU path
        (:meth:`_blocked_on_cpu`) the ``[T, ...]`` potentials and their gradient are not stored whole
        either (:func:`~event_lightning.nn.decolle.blocked.blocked_conv_weighted_spikes`).
        """
        if self._blocked_on_cpu(s_in):
            flat, initial, layer = self._blocked_input(_at_least_float32(s_in), state)
            return decolle_blocked.blocked_conv_weighted_spikes(flat, layer, initial, weights, self.surrogate_slope)
        u, _ = self.potentials(s_in, state)
        with torch.autocast(u.device.type, enabled=False):
            return decolle_blocked.spikes_weighted_over_time(u, weights.to(u.dtype), self.surrogate_slope), u[-1]

    def _with_initial_state(self, p: torch.Tensor, state: LIFState | None, kernels: TraceKernels) -> torch.Tensor:
        """``P[T-1]`` of the input alone ``p [B, ...]`` plus the decay of the initial ``state``."""
        if isinstance(self.base_layer, nn.Linear):
            p = p.flatten(1)
        if state is not None:
            p = p + kernels.membrane_from_q[-1] * state.q.detach().reshape(p.shape)
            if state.p is not None:
                p = p + kernels.membrane_from_p[-1] * state.p.detach().reshape(p.shape)
        return p

    def potentials(self, s_in: torch.Tensor, state: LIFState | None = None) -> tuple[torch.Tensor, LIFState]:
        """A whole sequence ``s_in [T, B, ...]`` -> ``(u [T, B, ...], final_state)``: the pooled
        membrane potentials, before the threshold."""
        if self._blocked_on_cpu(s_in):
            return self._blocked_potentials(s_in, state)
        p, final = self.traces(s_in, state)
        steps, batch = p.shape[:2]
        u = self._membrane(p.reshape(steps * batch, *p.shape[2:]))
        return u.reshape(steps, batch, *u.shape[1:]), final

    def _blocked_on_cpu(self, s_in: torch.Tensor) -> bool:
        """Whether :meth:`potentials` runs in blocks of steps (:mod:`~event_lightning.nn.decolle.blocked`): a conv
        layer on a CPU, eager, without autocast, weights in the traces' dtype. Elsewhere (a GPU, a
        compiled graph, bf16) the whole sequence is one product and one conv."""
        conv = self.base_layer
        return (
            isinstance(conv, nn.Conv2d)
            and conv.padding_mode == "zeros"
            and s_in.device.type == "cpu"
            and s_in.dim() == 5
            and not torch.compiler.is_compiling()
            and not torch.is_autocast_enabled("cpu")
            and conv.weight.dtype == torch.promote_types(s_in.dtype, torch.float32)
        )

    def _blocked_input(
        self, s_in: torch.Tensor, state: LIFState | None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor], decolle_blocked.BlockedConvLayer]:
        """``s_in [T, B, C, H, W]`` (at least float32) as the blocked path takes it: the spikes ``[T, N]``
        in memory order, the initial traces ``(q0, p0)`` as ``[N]`` vectors in that order (zeros for
        none: adding 0 is exact), and this layer with the layout of one step."""
        channels_last = channels_last_steps(s_in)
        flat = flatten_steps(s_in, channels_last)
        q0 = p0 = flat.new_zeros(flat.shape[1])
        if state is not None:
            q0 = flatten_steps(state.q.detach()[None], channels_last)[0]
            if state.p is not None:
                p0 = flatten_steps(state.p.detach()[None], channels_last)[0]
        layout = (s_in.shape[1:], channels_last)
        decays = (self.alpha, self.beta)
        return flat, (q0, p0), decolle_blocked.BlockedConvLayer(self.base_layer, layout, self.pool_size, decays)

    def _blocked_potentials(self, s_in: torch.Tensor, state: LIFState | None) -> tuple[torch.Tensor, LIFState]:
        s_in = _at_least_float32(s_in)
        flat, (q0, p0), layer = self._blocked_input(s_in, state)
        u = decolle_blocked.blocked_conv_potentials(flat, layer, (q0, p0))
        # the final state, as :meth:`traces` gives it (two rows of the whole-sequence kernels)
        kernels = self._kernels(s_in)
        q_last = torch.addmv(q0, flat.T, kernels.synaptic_last, beta=kernels.synaptic_last_from_q)
        p_last = flat.T @ kernels.membrane[-1] + kernels.membrane_from_q[-1] * q0 + kernels.membrane_from_p[-1] * p0
        final = LIFState(*(unflatten_steps(x[None], *layer.layout)[0] for x in (q_last, p_last)))
        return u, final

    def forward(self, s_in: torch.Tensor, state: LIFState | None = None) -> tuple[torch.Tensor, torch.Tensor, LIFState]:
        """A whole sequence ``s_in [T, B, ...]`` -> ``(spikes [T, B, ...], u [T, B, ...], final_state)``."""
        u, final = self.potentials(s_in, state)
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
        """Each layer's state after the warm-up step on frame 0 ``x0 [B, C, H, W]`` (no gradient).

        The step starts from zero traces, so it leaves ``P = 0``: every layer's ``U`` is its bias
        and its output spikes ``H(maxpool(b)) = H(b)``, a constant per channel. Only the synaptic
        traces ``Q = (1 - beta) S_in`` are non-zero (``p = None``); no convolution is needed to know them.
        """
        if not self.config.warmup_first_step:
            return [None] * len(self.layers)
        states: list[LIFState | None] = []
        spikes = _at_least_float32(x0.detach())
        for layer in self.layers:
            spikes = self._prepare(layer, spikes[None])[0]
            states.append(LIFState((1.0 - layer.beta) * spikes, None))
            spikes = layer.resting_spikes(spikes)
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
        *conv_layers, dense = self.layers
        # Only U[T-1] of the dense layer is read: one row of the trace kernel, one product, on the
        # last conv layer's spikes as they lie in memory (flattening [B, C, H, W] after the sum over
        # time copies T times less). Those spikes feed nothing else, so unless a hook wants them the
        # last conv layer hands on only their weighted sum over time, never storing them (nor, on a
        # CPU, its [T, ...] potentials).
        fuse_last = bool(conv_layers) and not _has_forward_hooks(conv_layers[-1])
        spikes = x
        for layer, state in zip(conv_layers[: len(conv_layers) - fuse_last], states, strict=False):
            # through __call__, so forward hooks (the spike-raster figures) see the layer's spikes
            spikes, u, _ = layer(spikes, state)
            if all_layers:
                readouts.append(u[-1])
        if fuse_last:
            p, u_last = dense.last_trace_of_layer(conv_layers[-1], spikes, states[-2], states[-1])
            if all_layers:
                readouts.append(u_last)
        else:
            p = dense.last_trace(spikes, states[-1])
        readouts.append(dense._membrane(p))
        return readouts
