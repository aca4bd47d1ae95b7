"""Run a NIR graph time step by time step in torch (the import side of the NIR exchange).

NIR describes continuous-time dynamics; this executor discretises them with one fixed step ``dt``
(seconds), the same convention the exporters in this package assume (docs/nir.md):

* Every node is evaluated once per step, in a topological order of the graph. A node's input is
  the sum of the outputs of its predecessors (NIR's rule for several incoming edges).
* An edge that closes a cycle carries the value of the *previous* step (zero at step 0). Cycles are
  broken at the back edges of a depth-first search that starts at the ``Input`` nodes (by name)
  and follows edges in the order the graph lists them, so a recurrent weight written after the
  neuron it feeds back to reads that neuron's last spikes.
* The input value ``x_t`` of a step is held constant over the step (forward Euler). With
  ``a = dt / tau``: ``LI``: ``v += a ((v_leak - v) + r x)``; ``CubaLI``/``CubaLIF``: the synaptic
  current first takes the input term, ``I += a_syn w_in x``, the membrane integrates that current,
  ``v += a_mem ((v_leak - v) + r I)``, then the current leaks, ``I -= a_syn I``; ``LIF``/``CubaLIF``
  fire ``z = v > v_threshold`` and set ``v = v_reset`` where ``z``. ``I``/``IF``: ``v += dt r x``.
  States start at ``v = v_leak`` (0 for ``I``/``IF``) and ``I = 0``.
* ``Delay`` delays by ``delay / dt`` whole steps (zeros before); ``SumPool2d`` sums windows.

Tensors are time-first: one ``Input`` takes ``[T, B, *shape]``; outputs are ``[T, B, *shape]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import nir
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["NIRExecutor", "graph_dt", "load_nir"]

DT_METADATA_KEY = "dt"
"""Key of the simulation step (seconds) in ``NIRGraph.metadata``."""


def graph_dt(graph: nir.NIRGraph) -> float | None:
    """The step ``dt`` (seconds) stored in the graph's metadata by our exporters, or ``None``."""
    metadata = getattr(graph, "metadata", None) or {}
    value = metadata.get(DT_METADATA_KEY)
    return None if value is None else float(np.asarray(value))


def _f32(value: Any) -> torch.Tensor:
    return torch.as_tensor(np.asarray(value, dtype=np.float64), dtype=torch.float32)


def _f64(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.float64)


def _int_tuple(value: Any, n: int) -> tuple[int, ...]:
    array = np.asarray(value).astype(int).reshape(-1)
    return tuple(int(v) for v in (np.repeat(array, n) if array.size == 1 else array))


class _Stateless(nn.Module):
    stateful = False


class _Identity(_Stateless):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class _Affine(_Stateless):
    def __init__(self, weight: Any, bias: Any | None) -> None:
        super().__init__()
        weight = np.asarray(weight)
        if weight.ndim != 2:
            raise ValueError(f"NIR Affine/Linear: only 2-D weights are supported, found shape {weight.shape}")
        self.register_buffer("weight", _f32(weight))
        self.register_buffer("bias", None if bias is None else _f32(bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class _Scale(_Stateless):
    def __init__(self, scale: Any) -> None:
        super().__init__()
        self.register_buffer("scale", _f32(scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


class _Conv(_Stateless):
    def __init__(self, node: nir.Conv1d | nir.Conv2d) -> None:
        super().__init__()
        self.dims = 2 if isinstance(node, nir.Conv2d) else 1
        self.register_buffer("weight", _f32(node.weight))
        self.register_buffer("bias", None if node.bias is None else _f32(node.bias))
        padding = node.padding
        if isinstance(padding, bytes):
            padding = padding.decode()
        self.padding = padding if isinstance(padding, str) else _int_tuple(padding, self.dims)
        self.stride = _int_tuple(node.stride, self.dims)
        self.dilation = _int_tuple(node.dilation, self.dims)
        self.groups = int(np.asarray(node.groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        conv = F.conv2d if self.dims == 2 else F.conv1d
        return conv(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class _Pool(_Stateless):
    def __init__(self, node: nir.SumPool2d | nir.AvgPool2d) -> None:
        super().__init__()
        self.kernel = _int_tuple(node.kernel_size, 2)
        self.stride = _int_tuple(node.stride, 2)
        self.padding = _int_tuple(node.padding, 2)
        # a divisor of 1 turns the average into the window sum
        self.divisor = 1 if isinstance(node, nir.SumPool2d) else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(x, self.kernel, self.stride, self.padding, divisor_override=self.divisor)


class _Flatten(_Stateless):
    def __init__(self, start_dim: Any, end_dim: Any) -> None:
        super().__init__()
        # NIR shapes exclude the batch dimension, tensors here carry it in front
        start, end = int(np.asarray(start_dim)), int(np.asarray(end_dim))
        self.start = start + 1 if start >= 0 else start
        self.end = end + 1 if end >= 0 else end

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(self.start, self.end)


class _Threshold(_Stateless):
    def __init__(self, threshold: Any) -> None:
        super().__init__()
        self.register_buffer("threshold", _f32(threshold))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x > self.threshold).to(x.dtype)


class _Neuron(nn.Module):
    """Leaky/perfect integrators with an optional synaptic current and optional threshold."""

    stateful = True

    def __init__(
        self,
        dt: float,
        tau_mem: Any | None,
        r: Any,
        v_leak: Any | None = None,
        tau_syn: Any | None = None,
        w_in: Any | None = None,
        v_threshold: Any | None = None,
        v_reset: Any | None = None,
    ) -> None:
        super().__init__()
        r64 = _f64(r)
        # the membrane step factor: dt / tau for leaky neurons, dt for perfect integrators (I, IF)
        a_mem = dt / _f64(tau_mem) if tau_mem is not None else np.full_like(r64, dt)
        self.leaky = tau_mem is not None
        self.register_buffer("a_mem", _f32(a_mem))
        self.register_buffer("r", _f32(r64))
        self.register_buffer("v_leak", _f32(np.zeros_like(r64) if v_leak is None else v_leak))
        self.synapse = tau_syn is not None
        if self.synapse:
            a_syn = dt / _f64(tau_syn)
            # the input factor a_syn * w_in is formed in float64 once: exactly 1 when w_in = tau_syn / dt
            self.register_buffer("a_syn", _f32(a_syn))
            self.register_buffer("syn_gain", _f32(a_syn * _f64(1.0 if w_in is None else w_in)))
        self.spiking = v_threshold is not None
        if self.spiking:
            self.register_buffer("v_threshold", _f32(v_threshold))
            self.register_buffer("v_reset", _f32(np.zeros_like(r64) if v_reset is None else v_reset))

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, ...] | None) -> tuple[torch.Tensor, tuple]:
        if state is None:
            v = torch.zeros_like(x) + self.v_leak
            state = (v, torch.zeros_like(x)) if self.synapse else (v,)
        v = state[0]
        if self.synapse:
            current = state[1] + self.syn_gain * x
        else:
            current = x
        if self.leaky:
            v = v + self.a_mem * ((self.v_leak - v) + self.r * current)
        else:
            v = v + self.a_mem * (self.r * current)
        out = v
        if self.spiking:
            z = (v > self.v_threshold).to(v.dtype)
            v = torch.where(z.bool(), self.v_reset.expand_as(v), v)
            out = z
        if self.synapse:
            return out, (v, current - self.a_syn * current)
        return out, (v,)


class _Delay(nn.Module):
    stateful = True

    def __init__(self, delay: Any, dt: float) -> None:
        super().__init__()
        steps = _f64(delay) / dt
        rounded = np.rint(steps)
        if not np.allclose(steps, rounded, rtol=0, atol=1e-6) or np.unique(rounded).size != 1:
            raise ValueError(
                f"NIR Delay: the executor needs one delay that is a whole number of steps of dt={dt} s; "
                f"found delays/dt in [{steps.min()}, {steps.max()}]"
            )
        self.steps = int(rounded.reshape(-1)[0])

    def forward(self, x: torch.Tensor, state: list[torch.Tensor] | None) -> tuple[torch.Tensor, list]:
        if self.steps == 0:
            return x, []
        queue = [torch.zeros_like(x)] * self.steps if state is None else state
        return queue[0], queue[1:] + [x]


def _build(name: str, node: nir.NIRNode, dt: float) -> nn.Module:
    if isinstance(node, (nir.Input, nir.Output)):
        return _Identity()
    if isinstance(node, nir.Affine):
        return _Affine(node.weight, node.bias)
    if isinstance(node, nir.Linear):
        return _Affine(node.weight, None)
    if isinstance(node, nir.Scale):
        return _Scale(node.scale)
    if isinstance(node, (nir.Conv1d, nir.Conv2d)):
        return _Conv(node)
    if isinstance(node, (nir.SumPool2d, nir.AvgPool2d)):
        return _Pool(node)
    if isinstance(node, nir.Flatten):
        return _Flatten(node.start_dim, node.end_dim)
    if isinstance(node, nir.Threshold):
        return _Threshold(node.threshold)
    if isinstance(node, nir.Delay):
        return _Delay(node.delay, dt)
    if isinstance(node, nir.LI):
        return _Neuron(dt, node.tau, node.r, node.v_leak)
    if isinstance(node, nir.LIF):
        return _Neuron(dt, node.tau, node.r, node.v_leak, v_threshold=node.v_threshold, v_reset=node.v_reset)
    if isinstance(node, nir.CubaLI):
        return _Neuron(dt, node.tau_mem, node.r, node.v_leak, node.tau_syn, node.w_in)
    if isinstance(node, nir.CubaLIF):
        return _Neuron(dt, node.tau_mem, node.r, node.v_leak, node.tau_syn, node.w_in, node.v_threshold, node.v_reset)
    if isinstance(node, nir.I):
        return _Neuron(dt, None, node.r)
    if isinstance(node, nir.IF):
        return _Neuron(dt, None, node.r, v_threshold=node.v_threshold, v_reset=node.v_reset)
    raise ValueError(
        f"NIR node {name!r} of type {type(node).__name__} is not supported by the executor "
        "(nested NIRGraph nodes included: flatten them first)"
    )


def _schedule(graph: nir.NIRGraph) -> tuple[list[str], set[tuple[str, str]]]:
    """Topological order of the nodes and the set of back edges (those closing a cycle)."""
    successors: dict[str, list[str]] = {name: [] for name in graph.nodes}
    for source, target in graph.edges:
        successors[source].append(target)
    inputs = sorted(name for name, node in graph.nodes.items() if isinstance(node, nir.Input))
    if not inputs:
        raise ValueError("NIR graph has no Input node; the executor needs one to start from")
    colour: dict[str, int] = {}  # 1 = on the current path, 2 = finished
    back: set[tuple[str, str]] = set()
    postorder: list[str] = []
    for root in inputs:
        if root in colour:
            continue
        colour[root] = 1
        stack: list[tuple[str, int]] = [(root, 0)]
        while stack:  # iterative DFS: deep networks would exceed Python's recursion limit
            name, index = stack.pop()
            if index < len(successors[name]):
                stack.append((name, index + 1))
                child = successors[name][index]
                if colour.get(child) == 1:
                    back.add((name, child))
                elif child not in colour:
                    colour[child] = 1
                    stack.append((child, 0))
            else:
                colour[name] = 2
                postorder.append(name)
    unreachable = sorted(set(graph.nodes) - set(colour))
    if unreachable:
        raise ValueError(f"NIR graph nodes {unreachable} cannot be reached from the Input node(s) {inputs}")
    return postorder[::-1], back


class NIRExecutor(nn.Module):
    """A NIR graph as a time-stepped torch module (see the module docstring for the semantics).

    Args:
        graph: the graph, e.g. from ``nir.read(path)``.
        dt: simulation step in seconds; ``None`` takes ``graph.metadata["dt"]`` (written by this
            package's exporters) and fails if the graph has none.
    """

    def __init__(self, graph: nir.NIRGraph, dt: float | None = None) -> None:
        super().__init__()
        stored = graph_dt(graph)
        if dt is None and stored is None:
            raise ValueError("the NIR graph stores no metadata['dt']: pass dt (seconds) to NIRExecutor")
        self.dt = float(stored if dt is None else dt)
        if not self.dt > 0:
            raise ValueError(f"NIRExecutor: dt must be > 0 seconds, found {self.dt}")
        self.order, self.back_edges = _schedule(graph)
        self.names = list(graph.nodes)
        # ModuleDict keys may not contain dots; index modules by position instead of by name
        self.steps = nn.ModuleList(_build(name, graph.nodes[name], self.dt) for name in self.names)
        self._index = {name: i for i, name in enumerate(self.names)}
        self.predecessors: dict[str, list[tuple[str, bool]]] = {name: [] for name in graph.nodes}
        for source, target in graph.edges:
            self.predecessors[target].append((source, (source, target) in self.back_edges))
        self.input_names = sorted(n for n, node in graph.nodes.items() if isinstance(node, nir.Input))
        self.output_names = sorted(n for n, node in graph.nodes.items() if isinstance(node, nir.Output))

    def module(self, name: str) -> nn.Module:
        """The step module of node ``name``."""
        return self.steps[self._index[name]]

    def forward(
        self, x: torch.Tensor | Mapping[str, torch.Tensor], record: Sequence[str] = ()
    ) -> dict[str, torch.Tensor]:
        """Simulate ``T`` steps.

        Args:
            x: ``[T, B, *shape]`` for a graph with one ``Input`` node, else a mapping from input
                node name to such a tensor (all with the same ``T`` and ``B``).
            record: names of further nodes whose per-step outputs to return.

        Returns:
            ``{name: [T, B, ...]}`` for every ``Output`` node and every recorded node.
        """
        if isinstance(x, torch.Tensor):
            if len(self.input_names) != 1:
                raise ValueError(f"the graph has inputs {self.input_names}: pass a dict of tensors")
            x = {self.input_names[0]: x}
        if set(x) != set(self.input_names):
            raise ValueError(
                f"NIRExecutor: the graph's input nodes are {self.input_names}; tensors were given for {sorted(x)}"
            )
        unknown = set(record) - set(self.names)
        if unknown:
            raise ValueError(f"NIRExecutor: cannot record unknown node(s) {sorted(unknown)}")
        steps = {int(t.shape[0]) for t in x.values()}
        if len(steps) != 1:
            raise ValueError(f"NIRExecutor: inputs differ in length T: {sorted(steps)}")
        keep = list(dict.fromkeys([*self.output_names, *record]))
        traces: dict[str, list[torch.Tensor]] = {name: [] for name in keep}
        states: dict[str, Any] = {}
        previous: dict[str, torch.Tensor] = {}
        for t in range(steps.pop()):
            values: dict[str, torch.Tensor] = {}
            for name in self.order:
                if name in x:  # an Input node (the keys of x are exactly those)
                    total = x[name][t]
                else:
                    total = None
                    for source, delayed in self.predecessors[name]:
                        if delayed and source not in previous:
                            continue  # the fed-back value is zero at step 0
                        term = previous[source] if delayed else values[source]
                        total = term if total is None else total + term
                    if total is None:
                        raise ValueError(f"NIR node {name!r} has no input at step {t}")
                step = self.module(name)
                if step.stateful:
                    values[name], states[name] = step(total, states.get(name))
                else:
                    values[name] = step(total)
            previous = values
            for name in keep:
                traces[name].append(values[name])
        return {name: torch.stack(trace) for name, trace in traces.items()}


def load_nir(path: str, dt: float | None = None) -> NIRExecutor:
    """``nir.read(path)`` as a runnable :class:`NIRExecutor` (``dt`` from the file unless given)."""
    return NIRExecutor(nir.read(path), dt)
