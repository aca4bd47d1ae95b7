"""The leaky integrator (readout) over time: one matmul with its impulse responses, or a step loop."""

from __future__ import annotations

import functools

import torch

from event_lightning.nn.lif.steps import LIParameters, leaky_integrator_step

# Sequences up to this many steps run the leaky integrator as one matmul with a [T, T] kernel
# (4 MiB in float32 at the limit); longer ones step through time.
_LI_KERNEL_MAX_STEPS = 1024


@functools.lru_cache(maxsize=32)
def _li_kernels(
    steps: int, a_mem: float, a_syn: float, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Impulse responses of the leaky integrator over ``steps`` steps, built on ``device`` and kept
    there (one cache entry per sequence length, device and dtype, so a forward pass copies nothing
    to the device). Computed in float64, then rounded once to ``dtype``.

    With ``j_t = i_{t-1} + u_t``, ``v_t = (1 - a_mem) v_{t-1} + a_mem (v_leak + j_t)`` and
    ``i_t = (1 - a_syn) j_t``, every quantity is linear in the inputs and the initial state:
    ``v = K @ u + c_v v_0 + c_i i_0 + (1 - c_v) v_leak`` and
    ``i_T = g @ u + (1 - a_syn)^T i_0``. Returns ``(K [T, T], c_v [T], c_i [T], g [T])``.
    """
    alpha, beta = 1.0 - a_mem, 1.0 - a_syn
    # Normal tensors even when the first call comes from validation under inference_mode: training
    # saves the kernel for its backward pass, which inference tensors refuse.
    with torch.inference_mode(False), torch.no_grad():
        t = torch.arange(steps, dtype=torch.float64, device=device)
        lag = t[:, None] - t[None, :]
        causal = lag >= 0
        decay_v = torch.where(causal, alpha ** lag.clamp(min=0), 0.0)  # alpha^(t-k), k <= t
        decay_j = torch.where(causal, beta ** lag.clamp(min=0), 0.0)  # beta^(k-m), m <= k
        kernel = a_mem * decay_v @ decay_j
        kernels = (kernel, alpha ** (t + 1), kernel[:, 0], beta ** (steps - t))
        return tuple(k.to(dtype) for k in kernels)  # type: ignore[return-value]


def _leaky_integrator_by_kernel(
    input_current: torch.Tensor, v0: torch.Tensor, i0: torch.Tensor, p: LIParameters, dt: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The leaky integrator's whole sequence as matmuls (see :func:`_li_kernels`); autograd
    differentiates it like any linear map, so no time loop runs forward or backward."""
    steps = input_current.shape[0]
    a_syn = float(dt * p.tau_syn_inv)
    kernel, c_v, c_i, g = _li_kernels(
        steps, float(dt * p.tau_mem_inv), a_syn, input_current.device, input_current.dtype
    )
    flat = input_current.reshape(steps, -1)
    expand = (steps, *([1] * (input_current.dim() - 1)))
    voltages = (kernel @ flat).reshape(input_current.shape)
    voltages = voltages + c_v.reshape(expand) * v0 + c_i.reshape(expand) * i0 + (1.0 - c_v).reshape(expand) * p.v_leak
    i_final = (g @ flat).reshape(input_current.shape[1:]) + (1.0 - a_syn) ** steps * i0
    return voltages, voltages[-1], i_final


def leaky_integrator_scan(
    input_current: torch.Tensor,
    p: LIParameters,
    dt: float,
    state: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Leaky integrator over time: ``input_current [T, B, N]`` -> voltages ``[T, B, N]``, final ``(v, i)``."""
    if state is None:
        zeros = input_current.new_zeros(input_current.shape[1:])
        state = (zeros + p.v_leak, zeros)
    v, i = state
    if 0 < input_current.shape[0] <= _LI_KERNEL_MAX_STEPS and not torch.compiler.is_compiling():
        voltages, v, i = _leaky_integrator_by_kernel(input_current, v, i, p, dt)
        return voltages, (v, i)
    voltages = []
    for current in input_current.unbind(0):
        v, i = leaky_integrator_step(current, v, i, p, dt)
        voltages.append(v)
    return torch.stack(voltages), (v, i)
