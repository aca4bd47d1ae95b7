"""Rows 2 and 3: the POKER-DVS LIF classifier training step vs norse 1.1, and the pose SNN's
decay-input LIF layer vs spikingjelly 2.0's multi-step LIFNode."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from bench.measure import BenchConfig, paired_times
from bench.results import Results, Row, Skipped
from event_lightning.nn.lif import LIFClassifierNet, LIFParameters, LIParameters


@dataclass(frozen=True)
class ClassifierShape:
    """The POKER-DVS tutorial setting: T steps of 1 ms, batch, 2x35x35 inputs, hidden, classes."""

    time_steps: int = 200
    batch: int = 32
    polarities: int = 2
    side: int = 35
    hidden: int = 100
    classes: int = 4
    density: float = 0.015  # fraction of non-zero input cells (POKER-DVS 1 ms frames are ~1-2 %)

    @property
    def inputs(self) -> int:
        return self.polarities * self.side * self.side


# the LIFClassifier defaults (event_lightning/models/lif_classifier.py); alpha=1 for agreement
LIF_P = LIFParameters(tau_syn_inv=100.0, tau_mem_inv=100.0, v_th=0.3, alpha=1.0)
READOUT_P = LIParameters(tau_syn_inv=200.0, tau_mem_inv=100.0)
DT = 1e-3


def sparse_frames(shape: ClassifierShape, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    size = (shape.time_steps, shape.batch, shape.polarities, shape.side, shape.side)
    frames = (torch.rand(size, generator=generator) < shape.density).float()
    labels = torch.randint(0, shape.classes, (shape.batch,), generator=generator)
    return frames, labels


def build_norse_classifier(
    ours: LIFClassifierNet, device: torch.device | str = "cpu"
) -> tuple[Callable[[torch.Tensor], torch.Tensor], list]:
    """norse 1.1's tutorial network (per-step loop) with ``ours``' weights, on ``device``:
    (forward, parameters)."""
    import norse.torch as norse
    from norse.torch.functional.leaky_integrator import LIParameters as NorseLI
    from norse.torch.functional.lif import LIFParameters as NorseLIF

    hidden, inputs = ours.lif.input_weights.shape
    cell = norse.LIFRecurrentCell(
        inputs,
        hidden,
        p=NorseLIF(
            tau_syn_inv=torch.as_tensor(LIF_P.tau_syn_inv),
            tau_mem_inv=torch.as_tensor(LIF_P.tau_mem_inv),
            v_th=torch.as_tensor(LIF_P.v_th),
            alpha=torch.as_tensor(LIF_P.alpha),
        ),
        dt=DT,
    )
    fc = torch.nn.Linear(hidden, ours.fc_out.out_features, bias=False)
    li = norse.LICell(
        p=NorseLI(
            tau_syn_inv=torch.as_tensor(READOUT_P.tau_syn_inv),
            tau_mem_inv=torch.as_tensor(READOUT_P.tau_mem_inv),
        ),
        dt=DT,
    )
    cell, fc, li = cell.to(device), fc.to(device), li.to(device)
    with torch.no_grad():
        cell.input_weights.copy_(ours.lif.input_weights)
        cell.recurrent_weights.copy_(ours.lif.recurrent_weights)
        fc.weight.copy_(ours.fc_out.weight)

    def forward(frames: torch.Tensor) -> torch.Tensor:
        lif_state = li_state = None
        voltages = []
        for x_t in frames:
            z, lif_state = cell(x_t.flatten(1), lif_state)
            v, li_state = li(fc(z), li_state)
            voltages.append(v)
        return torch.stack(voltages)

    return forward, [cell.input_weights, cell.recurrent_weights, fc.weight]


def _loss(voltages: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    # the LIFClassifier's loss: NLL of log-softmax over the max readout voltage across time
    return F.nll_loss(F.log_softmax(voltages.max(dim=0).values, dim=-1), labels)


def train_step(forward, optimizer: torch.optim.Optimizer, frames, labels) -> torch.Tensor:
    optimizer.zero_grad(set_to_none=True)
    loss = _loss(forward(frames), labels)
    loss.backward()
    optimizer.step()
    return loss.detach()


def classifier_agreement(ours: LIFClassifierNet, norse_forward, norse_params: list, frames, labels) -> str:
    """Loss and every weight gradient of one step on the untouched weights, ours vs norse; the
    text starts with ``NO:`` when the loss differs by more than 1e-5 or a gradient by more than
    1e-5 of its largest entry."""
    ours_loss = _loss(ours(frames), labels)
    ours_loss.backward()
    norse_loss = _loss(norse_forward(frames), labels)
    norse_loss.backward()
    ours_params = [ours.lif.input_weights, ours.lif.recurrent_weights, ours.fc_out.weight]
    loss_diff = abs(ours_loss.item() - norse_loss.item())
    # gradients: worst |difference| relative to the largest gradient entry of that weight (the
    # sums run in a different order, so small entries of a large-scale gradient differ slightly)
    grad_error = max(
        ((a.grad - b.grad).abs().max() / b.grad.abs().max()).item()
        for a, b in zip(ours_params, norse_params, strict=True)
    )
    agree = f"loss abs diff {loss_diff:.1e}, grad rel. err {grad_error:.1e}"
    return "NO: " + agree if loss_diff > 1e-5 or grad_error > 1e-5 else agree


def run_lif_classifier_rows(cfg: BenchConfig, results: Results) -> None:
    """Row 2: one Adam training step of the POKER-DVS LIF classifier, ours vs norse."""
    try:
        import norse.torch  # noqa: F401
    except ImportError as error:  # pragma: no cover - norse is a benchmark-only peer
        results.skipped.append(Skipped("lif", "classifier training step", f"norse not importable: {error}"))
        return
    shape = ClassifierShape()
    torch.manual_seed(0)
    ours = LIFClassifierNet(shape.inputs, shape.hidden, shape.classes, LIF_P, READOUT_P, DT)
    norse_forward, norse_params = build_norse_classifier(ours)
    frames, labels = sparse_frames(shape)

    agree = classifier_agreement(ours, norse_forward, norse_params, frames, labels)

    ours_opt = torch.optim.Adam(ours.parameters(), lr=2e-3)
    norse_opt = torch.optim.Adam(norse_params, lr=2e-3)
    ours_time, norse_time = paired_times(
        lambda: train_step(ours, ours_opt, frames, labels),
        lambda: train_step(norse_forward, norse_opt, frames, labels),
        cfg,
    )
    results.rows.append(
        Row(
            "lif",
            "LIF classifier train step (fwd+bwd+Adam)",
            f"T={shape.time_steps} B={shape.batch} {shape.inputs}->{shape.hidden}->{shape.classes}",
            ours_time,
            "norse 1.1 per-step",
            norse_time,
            agree,
            f"input density {shape.density:.1%}",
        )
    )


def run_pose_lif_rows(cfg: BenchConfig, results: Results) -> None:
    """Row 3: the decay-input LIF layer (forward + backward) vs spikingjelly's multi-step LIFNode."""
    try:
        from event_lightning.nn.pose.lif import LIFParams, lif_multistep
    except ImportError as error:
        results.skipped.append(Skipped("pose_lif", "decay-input LIF", f"pose LIF not importable: {error}"))
        return
    try:
        from spikingjelly.activation_based import neuron, surrogate
    except ImportError as error:  # pragma: no cover - spikingjelly is a benchmark-only peer
        results.skipped.append(
            Skipped("pose_lif", "decay-input LIF", f"spikingjelly not importable: {error}")
        )
        return
    params = LIFParams(tau=2.0, v_threshold=1.0, alpha=2.0, detach_reset=False)
    node = neuron.LIFNode(
        tau=params.tau,
        decay_input=True,
        v_threshold=params.v_threshold,
        v_reset=None,
        surrogate_function=surrogate.ATan(alpha=params.alpha),
        detach_reset=params.detach_reset,
        step_mode="m",
    )
    t_steps, batch, channels, side = 16, 8, 16, 64
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(t_steps, batch, channels, side, side, generator=generator) * 1.5 + 0.5
    grad_out = torch.randn(x.shape, generator=generator)

    def ours_call() -> tuple[torch.Tensor, torch.Tensor]:
        x_in = x.detach().requires_grad_(True)
        spikes, _ = lif_multistep(x_in, None, params)
        spikes.backward(grad_out)
        return spikes.detach(), x_in.grad

    def peer_call() -> tuple[torch.Tensor, torch.Tensor]:
        node.reset()
        x_in = x.detach().requires_grad_(True)
        spikes = node(x_in)
        spikes.backward(grad_out)
        return spikes.detach(), x_in.grad

    (ours_s, ours_g), (peer_s, peer_g) = ours_call(), peer_call()
    ours_time, peer_time = paired_times(ours_call, peer_call, cfg)
    spikes_equal = torch.equal(ours_s, peer_s)
    grads_close = torch.allclose(ours_g, peer_g, rtol=1e-5, atol=1e-5)
    agree = f"spikes {'equal' if spikes_equal else 'DIFFER'}, grads {'equal' if grads_close else 'DIFFER'}"
    results.rows.append(
        Row(
            "pose_lif",
            "decay-input LIF fwd+bwd",
            f"T={t_steps} [{batch},{channels},{side},{side}]",
            ours_time,
            "spikingjelly LIFNode m",
            peer_time,
            agree,
            f"spike rate {ours_s.mean().item():.2f}",
        )
    )
