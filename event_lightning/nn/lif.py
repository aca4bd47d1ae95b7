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
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from event_lightning.nn.surrogate import superspike


@dataclass(frozen=True)
class LIFParameters:
    """LIF constants: inverse time constants in 1/s, voltages in arbitrary units."""

    tau_syn_inv: float = 200.0
    tau_mem_inv: float = 100.0
    v_leak: float = 0.0
    v_th: float = 1.0
    v_reset: float = 0.0
    alpha: float = 100.0


@dataclass(frozen=True)
class LIParameters:
    """Leaky-integrator constants (norse's LIParameters defaults)."""

    tau_syn_inv: float = 200.0
    tau_mem_inv: float = 100.0
    v_leak: float = 0.0


def lif_recurrent_step(
    current: torch.Tensor,
    z: torch.Tensor,
    v: torch.Tensor,
    i: torch.Tensor,
    recurrent_weights: torch.Tensor,
    p: LIFParameters,
    dt: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One step: projected input ``current [B, N]`` and state ``(z, v, i)`` -> new ``(z, v, i)``."""
    j = i + current + F.linear(z, recurrent_weights)
    v_decayed = v + dt * p.tau_mem_inv * ((p.v_leak - v) + j)
    i_new = j - dt * p.tau_syn_inv * j
    z_new = superspike(v_decayed - p.v_th, p.alpha)
    z_detached = z_new.detach()
    v_new = (1.0 - z_detached) * v_decayed + z_detached * p.v_reset
    return z_new, v_new, i_new


class LIFRecurrentStep(nn.Module):
    """:func:`lif_recurrent_step` as a module: the unit that ``compile`` compiles (shapes stay fixed
    while the sequence length varies, so it compiles once)."""

    def __init__(self, p: LIFParameters, dt: float) -> None:
        super().__init__()
        self.p, self.dt = p, dt

    def forward(self, current, z, v, i, recurrent_weights):
        return lif_recurrent_step(current, z, v, i, recurrent_weights, self.p, self.dt)


class _FusedLIFRecurrentScan(torch.autograd.Function):
    """The whole :func:`lif_recurrent_scan` as one autograd node (same forward ops, same values).

    Forward runs the step loop without building a graph and keeps only the pre-reset voltages
    and the spikes; backward walks time in reverse by hand, with the recurrent weight gradient as
    one matmul over all steps. This removes per-step autograd bookkeeping, which dominates the
    training step of small recurrent layers on CPU. Gradients follow the module's equations: no
    gradient through the reset, SuperSpike surrogate ``1 / (alpha |v' - v_th| + 1)^2``.
    """

    @staticmethod
    def forward(ctx, input_current, recurrent_weights, z0, v0, i0, p: LIFParameters, dt: float):  # type: ignore[override]
        a_mem, a_syn = dt * p.tau_mem_inv, dt * p.tau_syn_inv
        spikes = torch.empty_like(input_current)
        v_decayed_all = torch.empty_like(input_current)
        z, v, i = z0, v0, i0
        # With v_leak = v_reset = 0 (the defaults) three terms vanish exactly: (0 - v) + j == j - v,
        # a - b > 0 <=> a > b for IEEE floats, and adding z * 0 changes nothing; fewer ops per
        # step, same values as lif_recurrent_step.
        zero_leak_and_reset = p.v_leak == 0 and p.v_reset == 0
        for t in range(input_current.shape[0]):
            j = i + input_current[t] + F.linear(z, recurrent_weights)
            if zero_leak_and_reset:
                v_decayed = v + a_mem * (j - v)
                i = j - a_syn * j
                z = (v_decayed > p.v_th).to(v_decayed.dtype)
                v = (1.0 - z) * v_decayed
            else:  # the op sequence of lif_recurrent_step
                v_decayed = v + a_mem * ((p.v_leak - v) + j)
                i = j - a_syn * j
                z = (v_decayed - p.v_th > 0).to(v_decayed.dtype)
                v = (1.0 - z) * v_decayed + z * p.v_reset
            spikes[t] = z
            v_decayed_all[t] = v_decayed
        ctx.save_for_backward(recurrent_weights, z0, spikes, v_decayed_all)
        ctx.p, ctx.dt = p, dt
        return spikes, z.clone(), v, i

    @staticmethod
    def backward(ctx, grad_spikes, grad_z, grad_v, grad_i):  # type: ignore[override]
        recurrent_weights, z0, spikes, v_decayed_all = ctx.saved_tensors
        p, dt = ctx.p, ctx.dt
        a_mem, a_syn = dt * p.tau_mem_inv, dt * p.tau_syn_inv
        steps = spikes.shape[0]
        zeros = torch.zeros_like(z0)
        grad_z = zeros if grad_z is None else grad_z
        grad_v = zeros if grad_v is None else grad_v
        grad_i = zeros if grad_i is None else grad_i
        grad_spikes = torch.zeros_like(spikes) if grad_spikes is None else grad_spikes
        # surrogate derivative and reset factor of every step at once (vectorised over time)
        surrogate = ((v_decayed_all - p.v_th).abs() * p.alpha + 1.0).square().reciprocal_()
        keep = 1.0 - spikes
        grad_j_all = torch.empty_like(spikes)
        for t in range(steps - 1, -1, -1):
            grad_vd = grad_v * keep[t] + (grad_spikes[t] + grad_z) * surrogate[t]
            grad_j = a_mem * grad_vd + (1.0 - a_syn) * grad_i
            grad_j_all[t] = grad_j
            grad_v = (1.0 - a_mem) * grad_vd
            grad_i = grad_j
            grad_z = grad_j @ recurrent_weights  # j depends on z_{t-1} through W z
        z_previous = torch.cat((z0.unsqueeze(0), spikes[:-1]))
        n = spikes.shape[-1]
        grad_w = grad_j_all.reshape(-1, n).t() @ z_previous.reshape(-1, n)
        return grad_j_all, grad_w, grad_z, grad_v, grad_i, None, None


def _use_fused_scan(step: LIFRecurrentStep, tensors: tuple[torch.Tensor, ...]) -> bool:
    """The fused scan replaces calls of ``step``; keep the step loop where that would change what
    runs: a compiled step (``compile: true``), tracing by the compiler, autocast (mixed precision),
    or a subclassed step."""
    return (
        type(step) is LIFRecurrentStep
        and getattr(step, "_compiled_call_impl", None) is None
        and not torch.compiler.is_compiling()
        and not torch.is_autocast_enabled(tensors[0].device.type)  # mixed precision: the step loop
        and torch.is_grad_enabled()
        and any(t.requires_grad for t in tensors)
    )


def lif_recurrent_scan(
    input_current: torch.Tensor,
    recurrent_weights: torch.Tensor,
    step: LIFRecurrentStep,
    state: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Run recurrent LIF neurons over time.

    Args:
        input_current: ``[T, B, N]`` the already projected input ``W_in x_t`` of every step.
        recurrent_weights: ``[N, N]`` (row = postsynaptic neuron).
        step: the single-step update (its parameters and ``dt``).
        state: ``(z, v, i)`` each ``[B, N]``; ``None`` starts from ``z = 0, v = v_leak, i = 0``.

    Returns:
        spikes ``[T, B, N]`` and the final state ``(z, v, i)``.
    """
    if state is None:
        zeros = input_current.new_zeros(input_current.shape[1:])
        state = (zeros, zeros + step.p.v_leak, zeros)
    z, v, i = state
    if _use_fused_scan(step, (input_current, recurrent_weights, z, v, i)):
        spikes, z, v, i = _FusedLIFRecurrentScan.apply(input_current, recurrent_weights, z, v, i, step.p, step.dt)
        return spikes, (z, v, i)
    spikes = []
    for current in input_current.unbind(0):  # the recurrence needs z of the previous step
        z, v, i = step(current, z, v, i, recurrent_weights)
        spikes.append(z)
    return torch.stack(spikes), (z, v, i)


def leaky_integrator_step(
    current: torch.Tensor, v: torch.Tensor, i: torch.Tensor, p: LIParameters, dt: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One leaky-integrator step: ``current [B, N]`` and state ``(v, i)`` -> new ``(v, i)``."""
    j = i + current
    v_new = v + dt * p.tau_mem_inv * ((p.v_leak - v) + j)
    return v_new, j - dt * p.tau_syn_inv * j


# Sequences up to this many steps run the leaky integrator as one matmul with a [T, T] kernel
# (4 MiB in float32 at the limit); longer ones step through time.
_LI_KERNEL_MAX_STEPS = 1024


@functools.lru_cache(maxsize=16)
def _li_kernels(
    steps: int, a_mem: float, a_syn: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Impulse responses of the leaky integrator over ``steps`` steps, in float64 on the CPU.

    With ``j_t = i_{t-1} + u_t``, ``v_t = (1 - a_mem) v_{t-1} + a_mem (v_leak + j_t)`` and
    ``i_t = (1 - a_syn) j_t``, every quantity is linear in the inputs and the initial state:
    ``v = K @ u + c_v v_0 + c_i i_0 + (1 - c_v) v_leak`` and
    ``i_T = g @ u + (1 - a_syn)^T i_0``. Returns ``(K [T, T], c_v [T], c_i [T], g [T])``.
    """
    alpha, beta = 1.0 - a_mem, 1.0 - a_syn
    t = torch.arange(steps, dtype=torch.float64)
    lag = t[:, None] - t[None, :]
    causal = lag >= 0
    decay_v = torch.where(causal, alpha ** lag.clamp(min=0), 0.0)  # alpha^(t-k), k <= t
    decay_j = torch.where(causal, beta ** lag.clamp(min=0), 0.0)  # beta^(k-m), m <= k
    kernel = a_mem * decay_v @ decay_j
    return kernel, alpha ** (t + 1), kernel[:, 0], beta ** (steps - t)


def _leaky_integrator_by_kernel(
    input_current: torch.Tensor, v0: torch.Tensor, i0: torch.Tensor, p: LIParameters, dt: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The leaky integrator's whole sequence as matmuls (see :func:`_li_kernels`); autograd
    differentiates it like any linear map, so no time loop runs forward or backward."""
    steps = input_current.shape[0]
    a_syn = float(dt * p.tau_syn_inv)
    kernel, c_v, c_i, g = (
        k.to(device=input_current.device, dtype=input_current.dtype)
        for k in _li_kernels(steps, float(dt * p.tau_mem_inv), a_syn)
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


# Inputs at most this dense (fraction of non-zero cells) are projected as a sparse matrix; event
# frames of 1 ms are typically 1-2 % non-zero, where the sparse product is ~2x faster in total.
_SPARSE_INPUT_MAX_DENSITY = 0.05


class _SparseInputLinear(torch.autograd.Function):
    """``x @ weight.T`` for a constant (no-grad) sparse ``x [M, I]`` given as CSR together with the
    CSR of its transpose; gradient for ``weight`` only, as ``(x.T @ grad).T``. Building ``x.T``
    up front costs one radix sort of the column indices, far less than torch transposing a CSR
    tensor inside the backward pass."""

    @staticmethod
    def forward(ctx, x_csr: torch.Tensor, xt_csr: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(xt_csr)
        return x_csr @ weight.t()

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        (xt_csr,) = ctx.saved_tensors
        return None, None, (xt_csr @ grad_out).t()


def _csr_pair(x2d: torch.Tensor, dtype: type[np.floating]) -> tuple[torch.Tensor, torch.Tensor]:
    """CSR copies, with values of ``dtype``, of a 2-D CPU tensor ``[M, I]`` (float or integer
    counts) and of its transpose ``[I, M]``.

    The non-zeros are found once with numpy (its compare + flatnonzero is several times faster
    than torch's nonzero on floats); the transpose orders them by column with a stable sort,
    a radix sort when the column index fits in 16 bits.
    """
    rows_total, cols_total = x2d.shape
    dense = x2d.numpy()
    flat = np.flatnonzero(dense != 0)
    values = dense.reshape(-1)[flat].astype(dtype, copy=False)
    rows = flat // cols_total
    cols = flat - rows * cols_total
    row_ptr = np.zeros(rows_total + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=rows_total), out=row_ptr[1:])
    col_ptr = np.zeros(cols_total + 1, dtype=np.int64)
    np.cumsum(np.bincount(cols, minlength=cols_total), out=col_ptr[1:])
    order = np.argsort(cols.astype(np.int16) if cols_total <= 1 << 15 else cols, kind="stable")
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the ops used here are stable
        warnings.simplefilter("ignore", UserWarning)
        x_csr = torch.sparse_csr_tensor(
            torch.from_numpy(row_ptr), torch.from_numpy(cols), torch.from_numpy(values), size=(rows_total, cols_total)
        )
        xt_csr = torch.sparse_csr_tensor(
            torch.from_numpy(col_ptr),
            torch.from_numpy(rows[order]),
            torch.from_numpy(values[order]),
            size=(cols_total, rows_total),
        )
    return x_csr, xt_csr


def input_projection(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """``F.linear(x, weight)`` for ``x [..., I]``, through a sparse product when ``x`` is a sparse
    data tensor (CPU, no gradient wanted for it, at most 5 % non-zero); the result equals the
    dense product up to float summation order (~1e-6 relative).

    ``x`` may hold integer counts (the uint8 / int16 frames of the classification loaders): only its
    non-zeros are converted on the sparse path, and the dense path casts ``x`` to the weight's
    dtype on its device, so no float copy of the whole input is made on the host.
    """
    integer_counts = not x.is_floating_point()
    if integer_counts and (x.dtype == torch.bool or x.is_complex()):
        raise TypeError(f"input_projection: expected float or integer counts, found {x.dtype}")
    use_sparse = (
        x.device.type == "cpu"
        and weight.device.type == "cpu"
        and weight.dtype in (torch.float32, torch.float64)
        and (integer_counts or x.dtype == weight.dtype)
        and not x.requires_grad
        and x.dim() >= 2
        and x.numel() >= 1 << 16
        and not torch.compiler.is_compiling()
        and not torch.is_autocast_enabled("cpu")  # no bf16 sparse kernels; autocast picks the dense dtype
    )
    if use_sparse:
        probe = x.reshape(-1)[::97]  # cheap density estimate before paying for the exact scan
        use_sparse = bool(torch.count_nonzero(probe) <= _SPARSE_INPUT_MAX_DENSITY * probe.numel())
    if not use_sparse:
        return F.linear(x.to(weight.dtype) if integer_counts else x, weight)
    x2d = x.reshape(-1, x.shape[-1]).contiguous()
    pair = _csr_pair(x2d, np.float32 if weight.dtype == torch.float32 else np.float64)
    return _SparseInputLinear.apply(*pair, weight).reshape(*x.shape[:-1], weight.shape[0])


class LIFRecurrent(nn.Module):
    """A layer of recurrently connected current-based LIF neurons, time-first.

    Parameter names and initialisation follow norse's ``LIFRecurrentCell``: ``input_weights``
    ``[hidden, input]`` and ``recurrent_weights`` ``[hidden, hidden]``, both ``N(0, 1) * sqrt(2 /
    hidden)``; without autapses the recurrent diagonal is zero and stays zero (it is masked in the
    forward pass, so its gradient is zero too). The input projection of all T steps is one matmul;
    only the recurrence loops over time.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        p: LIFParameters = LIFParameters(),
        dt: float = 1e-3,
        autapses: bool = False,
    ) -> None:
        super().__init__()
        self.step = LIFRecurrentStep(p, dt)
        scale = math.sqrt(2.0 / hidden_size)
        self.input_weights = nn.Parameter(torch.randn(hidden_size, input_size) * scale)
        self.recurrent_weights = nn.Parameter(torch.randn(hidden_size, hidden_size) * scale)
        mask = torch.ones(hidden_size, hidden_size)
        if not autapses:
            mask.fill_diagonal_(0.0)
            with torch.no_grad():
                self.recurrent_weights.mul_(mask)
        self.register_buffer("recurrent_mask", mask, persistent=False)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """``x [T, B, input]`` -> spikes ``[T, B, hidden]`` and the final state ``(z, v, i)``."""
        current = input_projection(x, self.input_weights)
        return lif_recurrent_scan(current, self.recurrent_weights * self.recurrent_mask, self.step, state)


class LeakyIntegrator(nn.Module):
    """Stateless leaky-integrator cell over time: ``[T, B, N]`` currents -> ``[T, B, N]`` voltages."""

    def __init__(self, p: LIParameters = LIParameters(), dt: float = 1e-3) -> None:
        super().__init__()
        self.p, self.dt = p, dt

    def forward(
        self, current: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        return leaky_integrator_scan(current, self.p, self.dt, state)


class LIFClassifierNet(nn.Module):
    """norse's POKER-DVS tutorial network: flatten -> recurrent LIF -> Linear (no bias) -> LI.

    Input frames ``[T, B, P, H, W]`` (any trailing shape; flattened in (P, H, W) order); output
    the readout voltages ``[T, B, num_classes]``.
    """

    def __init__(
        self,
        input_features: int,
        hidden_features: int,
        num_classes: int,
        lif: LIFParameters,
        readout: LIParameters,
        dt: float,
    ) -> None:
        super().__init__()
        self.lif = LIFRecurrent(input_features, hidden_features, lif, dt)
        self.fc_out = nn.Linear(hidden_features, num_classes, bias=False)
        self.readout = LeakyIntegrator(readout, dt)

    def compile_targets(self) -> list[nn.Module]:
        """What ``compile: true`` compiles: the recurrent step (the readout is a few cheap ops)."""
        return [self.lif.step]

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        spikes, _ = self.lif(frames.flatten(2))
        voltages, _ = self.readout(self.fc_out(spikes))
        return voltages
