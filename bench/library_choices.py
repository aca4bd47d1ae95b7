"""``python -m bench.library_choices [--quick] [--only aedat4 nir guard checkpoint]``: hand-written or library?

The measurements behind docs/contributing.md, "Why we hand-write X / why we use library Y": each
group runs the hand-written code of this project and the library that could replace it on the
same input and prints what decides the choice (speed, peak memory, outcome on hostile inputs,
what each supports). Peak memory is measured in a fresh subprocess
(Linux ``VmHWM`` growth once the imports are done), so native allocations (Rust, C) count.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.measure import BenchConfig, machine_description, paired_times

GROUPS = ("aedat4", "nir", "guard", "checkpoint")
DVXPLORER = (640, 480)
GRAPHS = (
    "LIF classifier (recurrent CubaLIF, CubaLI)",
    "DECOLLE encoder (LI, Threshold, Delay)",
    "pose SNN (LI, Threshold, Scale reset loops)",
)
_PEAK_RSS = (
    "def kib(field):\n"
    "    return int(next(x for x in open('/proc/self/status') if x.startswith(field)).split()[1])\n"
    "open('/proc/self/clear_refs', 'w').write('5')  # the peak (VmHWM) restarts from the current RSS\n"
)
"""Code for a subprocess: ``kib('VmHWM') - kib('VmRSS')`` measured after it is the peak growth (KiB)."""
LZ4_BOMB_BYTES = 512 << 20
"""What the hostile AEDAT4 packet inflates to (a 2 MiB LZ4 frame)."""


# ------------------------------------------------------------------------------------------ AEDAT4


def read_with_aedat_package(path: str | Path) -> np.ndarray:
    """The first event stream of ``path`` decoded by the Rust ``aedat`` package, as :data:`EVENT_DTYPE`."""
    import aedat

    from event_lightning.events.core import make_events

    decoder = aedat.Decoder(str(path))
    first = min(i for i, s in decoder.id_to_stream().items() if s["type"] == "events")
    chunks = [p["events"] for p in decoder if p["stream_id"] == first and "events" in p]
    raw = np.concatenate(chunks) if chunks else np.zeros(0, [("t", "<i8"), ("x", "<u2"), ("y", "<u2"), ("on", "?")])
    return make_events(raw["x"], raw["y"], raw["t"], raw["on"])


def _read_ours(path: str | Path) -> np.ndarray:
    from event_lightning.events.formats.aedat4 import read_aedat4

    return read_aedat4(path)


_READERS: dict[str, Callable[[str | Path], np.ndarray]] = {"ours": _read_ours, "aedat": read_with_aedat_package}


def _realistic_recording(folder: Path, n_events: int, compression: str) -> Path:
    """A DVXplorer-sized (640 x 480) recording at 5 Mev/s written by our writer, DV's packet size."""
    from event_lightning.events.core import SensorSize, make_events
    from event_lightning.events.formats.aedat4 import write_aedat4

    rng = np.random.default_rng(0)
    t = 1_700_000_000_000_000 + np.sort(rng.integers(0, n_events // 5, n_events))  # 5 events per µs
    # clustered activity (edges of moving objects), not uniform noise: it compresses as real data does
    x = np.clip(rng.normal(320, 90, n_events), 0, 639).astype(np.int64)
    y = np.clip(rng.normal(240, 70, n_events), 0, 479).astype(np.int64)
    events = make_events(x, y, t, rng.integers(0, 2, n_events))
    sensor = SensorSize(*DVXPLORER, 2)
    return write_aedat4(folder / f"dvxplorer_{compression}.aedat4", events, sensor, compression)


def _lz4_bomb_recording(folder: Path) -> Path:
    """One ``EVTS`` packet whose 2 MiB LZ4 frame (no declared size) inflates to :data:`LZ4_BOMB_BYTES`."""
    import struct

    import lz4.frame

    from event_lightning.events.formats.aedat4 import Aedat4Stream, encode_aedat4_header

    count = LZ4_BOMB_BYTES // 16
    body = struct.pack("<I4s3H2xiII", 16, b"EVTS", 6, 8, 4, 16 - 8, 24 - 20, count)
    compressor = lz4.frame.LZ4FrameCompressor()
    frame = compressor.begin() + compressor.compress(struct.pack("<I", len(body) + 16 * count) + body)
    chunk = bytes(1 << 20)
    frame += b"".join(compressor.compress(chunk) for _ in range(count * 16 // len(chunk))) + compressor.flush()
    header = encode_aedat4_header([Aedat4Stream(0, "EVTS", *DVXPLORER)], "lz4")
    path = folder / "lz4_bomb.aedat4"
    path.write_bytes(header + struct.pack("<iI", 0, len(frame)) + frame)
    return path


def _hostile_recordings(folder: Path, valid: Path) -> dict[str, Path]:
    """Inputs the reliability fuzz tests use: a bomb, a cut at a packet boundary, bytes past the sensor."""
    from event_lightning.events.formats.aedat4 import read_aedat4_header

    data = valid.read_bytes()
    header = read_aedat4_header(valid)
    cut = folder / "cut_at_packet_boundary.aedat4"
    cut.write_bytes(data[: header.packets[len(header.packets) // 2].offset])
    outside = folder / "x_outside_sensor.aedat4"
    outside.write_bytes(data.replace(b'sizeX" type="int">640', b'sizeX" type="int">320', 1))
    return {
        "lz4 bomb (2 MiB -> 512 MiB)": _lz4_bomb_recording(folder),
        "cut at a packet boundary": cut,
        "x beyond the declared sizeX": outside,
    }


def _peak_read(reader: str, path: Path) -> dict[str, Any]:
    """Read ``path`` with ``reader`` in a fresh interpreter: peak RSS growth (MiB) and the outcome."""
    code = (
        "import json\n"
        "from bench.library_choices import _READERS\n"
        "import aedat, lz4.frame, event_lightning.events.formats.aedat4\n"
        + _PEAK_RSS
        + "before = kib('VmRSS')\n"
        + f"read, path = _READERS[{reader!r}], {str(path)!r}\n"
        "try:\n"
        "    outcome = f'{len(read(path))} events'\n"
        "except Exception as error:\n"
        f"    named = {path.name!r} in str(error)\n"
        "    outcome = f'{type(error).__name__}' + (' naming the file' if named else ' (file not named)')\n"
        "peak = (kib('VmHWM') - before) / 1024\n"
        "print(json.dumps({'outcome': outcome, 'peak_mib': peak}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600)
    return json.loads(done.stdout.strip().splitlines()[-1])


def aedat4_rows(cfg: BenchConfig, folder: Path) -> list[str]:
    n_events = 500_000 if cfg.quick else 5_000_000
    rows = ["| file | ours | `aedat` 2.3.0 |", "|---|---|---|"]
    for compression in ("none", "lz4", "zstd"):
        path = _realistic_recording(folder, n_events, compression)
        assert np.array_equal(_read_ours(path), read_with_aedat_package(path)), "the readers disagree"
        ours, peer = paired_times(lambda p=path: _read_ours(p), lambda p=path: read_with_aedat_package(p), cfg)
        mib = path.stat().st_size / 2**20
        memory = {name: _peak_read(name, path)["peak_mib"] for name in _READERS}
        rows.append(
            f"| {n_events / 1e6:g} M events, {compression} ({mib:.0f} MiB): time, peak memory | "
            f"{ours:.3f} s, {memory['ours']:.0f} MiB | {peer:.3f} s, {memory['aedat']:.0f} MiB |"
        )
    for what, path in _hostile_recordings(folder, _realistic_recording(folder, 200_000, "lz4")).items():
        outcome = {name: _peak_read(name, path) for name in _READERS}
        rows.append(
            f"| {what} | {outcome['ours']['outcome']}, {outcome['ours']['peak_mib']:.0f} MiB | "
            f"{outcome['aedat']['outcome']}, {outcome['aedat']['peak_mib']:.0f} MiB |"
        )
    return rows


# --------------------------------------------------------------------------------------------- NIR


def _exported_graphs() -> dict[str, tuple[Any, Any]]:
    """The three exported graphs (random weights) and a ``[T, B, ...]`` spike input for each."""
    import torch

    from event_lightning.nir import decolle_graph_input, export_decolle_encoder, export_lif_classifier, export_pose_snn
    from event_lightning.nn.decolle import DecolleEncoder, DecolleEncoderConfig
    from event_lightning.nn.lif import LIFClassifierNet, LIFParameters, LIParameters
    from event_lightning.nn.pose.lif import LIFParams
    from event_lightning.nn.pose.snn_unet import SpikingPoseUNet

    def spikes(*shape: int) -> torch.Tensor:
        return (torch.rand(shape, generator=torch.Generator().manual_seed(0)) < 0.3).float()

    torch.manual_seed(0)
    lif = LIFClassifierNet(2 * 34 * 34, 128, 10, LIFParameters(v_th=0.3), LIParameters(), 1e-3)
    decolle = DecolleEncoder(DecolleEncoderConfig((2, 32, 32), (16, 32), (2, 1), 3, 64, (0.9, 0.85, 0.8), 0.8))
    pose = SpikingPoseUNet(2, 3, 4, LIFParams(tau=2.0, v_threshold=1.0), tail="integrator")
    graphs = (
        (export_lif_classifier(lif, (2, 34, 34)), spikes(50, 8, 2, 34, 34)),
        (export_decolle_encoder(decolle, dt=1e-3), decolle_graph_input(decolle, spikes(20, 4, 2, 32, 32))),
        (export_pose_snn(pose, (2, 32, 32), dt=1e-2), spikes(10, 2, 2, 32, 32)),
    )
    return dict(zip(GRAPHS, graphs, strict=True))


def _step_all(module: Any, x: Any) -> Any:
    """Run a stateful ``(out, state) = module(x_t, state)`` module over ``x`` [T, B, ...]."""
    import torch

    state, outputs = None, []
    with torch.no_grad():
        for step in x:
            out, state = module(step, state)
            outputs.append(out)
    return outputs


def _norse_module(graph: Any) -> Any:
    import norse.torch

    from event_lightning.nir import graph_dt

    return norse.torch.from_nir(graph, dt=graph_dt(graph))


def _nirtorch_module(graph: Any) -> Any:
    """nirtorch's graph interpreter wired with this project's node modules (the same neuron dynamics)."""
    import nir
    import nirtorch

    from event_lightning.nir import graph_dt
    from event_lightning.nir.executor import _build

    dt = graph_dt(graph)
    kinds = {type(node) for node in graph.nodes.values()} - {nir.Input, nir.Output}
    return nirtorch.nir_to_torch(graph, {kind: (lambda node: _build("node", node, dt)) for kind in kinds})


def nir_case(graph_index: int, importer: str, quick: bool) -> str:
    """Import exported graph number ``graph_index`` with ``importer`` ("norse" or "nirtorch") and compare."""
    graph, x = list(_exported_graphs().values())[graph_index]
    return _compare({"norse": _norse_module, "nirtorch": _nirtorch_module}[importer], graph, x, BenchConfig.make(quick))


def _in_subprocess(graph_index: int, importer: str, quick: bool, seconds: float) -> str:
    """:func:`nir_case` in a fresh interpreter, or a note that it did not finish in ``seconds``."""
    code = f"from bench.library_choices import nir_case; print(nir_case({graph_index}, {importer!r}, {quick}))"
    try:
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=seconds)
    except subprocess.TimeoutExpired:
        return f"did not finish in {seconds:.0f} s"
    lines = done.stdout.strip().splitlines()
    return lines[-1] if done.returncode == 0 and lines else f"crashed: {done.stderr.strip().splitlines()[-1]}"


def _compare(build: Callable[[Any], Any], graph: Any, x: Any, cfg: BenchConfig) -> str:
    """Build and run ``build(graph)``; equality with our executor's outputs and the two run times."""
    import torch

    from event_lightning.nir import NIRExecutor

    try:
        module = build(graph)
        outputs = _step_all(module, x)
    except Exception as error:  # noqa: BLE001 - the failure is the measurement
        return f"fails: {type(error).__name__}: {str(error).splitlines()[0][:80]}"
    executor = NIRExecutor(graph)
    with torch.no_grad():
        reference = executor(x)
    names = sorted(reference)
    if isinstance(outputs[0], torch.Tensor):
        outputs = [{names[0]: out} for out in outputs]
    same = all(torch.equal(torch.stack([out[name] for out in outputs]), reference[name]) for name in names)
    ours, peer = paired_times(lambda: executor(x), lambda: _step_all(module, x), cfg)
    return f"{'identical outputs' if same else 'DIFFERENT outputs'}; {peer * 1e3:.0f} ms vs ours {ours * 1e3:.0f} ms"


def nir_rows(cfg: BenchConfig, folder: Path) -> list[str]:
    rows = ["| exported graph | `norse.torch.from_nir` 1.1.0 | `nirtorch.nir_to_torch` 2.6 + our node modules |"]
    rows.append("|---|---|---|")
    for index, what in enumerate(GRAPHS):
        norse, nirtorch = (_in_subprocess(index, importer, cfg.quick, 180) for importer in ("norse", "nirtorch"))
        rows.append(f"| {what} | {norse} | {nirtorch} |")
    return rows


# ------------------------------------------------------------------------- non-finite loss guard


NAN_FROM_STEP = 10
STEPS_PER_EPOCH = 8


def _diverging_module() -> Any:
    """A linear regression whose loss (and so its weights, after the step) turns NaN at :data:`NAN_FROM_STEP`."""
    import pytorch_lightning as pl
    import torch

    class Diverging(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            if self.global_step >= NAN_FROM_STEP:
                loss = loss * float("nan")
            self.log("train/loss", loss, on_step=True, on_epoch=True)
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.01)

        def train_dataloader(self) -> Any:
            data = torch.utils.data.TensorDataset(
                torch.randn(STEPS_PER_EPOCH * 4, 4), torch.randn(STEPS_PER_EPOCH * 4, 1)
            )
            return torch.utils.data.DataLoader(data, batch_size=4)

    return Diverging()


def _diverge_with(stopper: Any, folder: Path) -> str:
    """Train :func:`_diverging_module` for 3 epochs with ``stopper`` and a last.ckpt-writing ModelCheckpoint."""
    import pytorch_lightning as pl
    import torch

    checkpoint = pl.callbacks.ModelCheckpoint(dirpath=folder, save_last=True)
    trainer = pl.Trainer(
        max_epochs=3,
        callbacks=[stopper, checkpoint],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        devices=1,
    )
    try:
        trainer.fit(_diverging_module())
        ended = f"stopped at global step {trainer.global_step}"
    except Exception as error:  # noqa: BLE001 - how it stops is the measurement
        ended = f"{type(error).__name__} at global step {trainer.global_step}"
    last = folder / "last.ckpt"
    if not last.exists():
        return f"{ended}; no last.ckpt"
    state = torch.load(last, weights_only=True)
    finite = all(torch.isfinite(v).all() for v in state["state_dict"].values())
    return f"{ended}; last.ckpt: step {state['global_step']}, {'finite' if finite else 'NaN'} weights"


def guard_rows(cfg: BenchConfig, folder: Path) -> list[str]:
    from pytorch_lightning.callbacks import EarlyStopping

    from event_lightning.callbacks.guards import NonFiniteLossGuard

    stoppers = {
        "`NonFiniteLossGuard()` (reads every 20 batches and before any save)": NonFiniteLossGuard(),
        "`EarlyStopping(monitor='train/loss_step', check_finite=True)`": EarlyStopping(
            "train/loss_step", check_finite=True, patience=10**6
        ),
        "`EarlyStopping(monitor='train/loss_epoch', check_finite=True)`": EarlyStopping(
            "train/loss_epoch", check_finite=True, patience=10**6
        ),
    }
    rows = [f"| stopper (loss NaN from global step {NAN_FROM_STEP}, {STEPS_PER_EPOCH} steps an epoch) | outcome |"]
    rows.append("|---|---|")
    for index, (what, stopper) in enumerate(stoppers.items()):
        rows.append(f"| {what} | {_diverge_with(stopper, folder / f'guard{index}')} |")
    return rows


# ------------------------------------------------------------------------------- atomic checkpoints


_CHECKPOINT_WRITERS = {"lightning": "TorchCheckpointIO", "ours": "AtomicCheckpointIO"}


def _checkpoint_write(writer: str, path: Path, megabytes: int) -> dict[str, Any]:
    """Write a ``megabytes`` MiB checkpoint with ``writer`` in a fresh interpreter: time and peak RSS growth."""
    code = (
        "import json, time, torch\n"
        "from pytorch_lightning.plugins.io import TorchCheckpointIO\n"
        "from event_lightning.callbacks.checkpoint import AtomicCheckpointIO\n"
        f"state = {{'state_dict': {{'w': torch.ones({megabytes} << 18)}}}}\n"
        f"write = {_CHECKPOINT_WRITERS[writer]}().save_checkpoint\n"
        + _PEAK_RSS
        + "before, start = kib('VmRSS'), time.perf_counter()\n"
        f"write(state, {str(path)!r})\n"
        "print(json.dumps({'s': time.perf_counter() - start, 'peak_mib': (kib('VmHWM') - before) / 1024}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=600)
    return json.loads(done.stdout.strip().splitlines()[-1])


def checkpoint_rows(cfg: BenchConfig, folder: Path) -> list[str]:
    megabytes = 64 if cfg.quick else 512
    rows = [f"| writer of a {megabytes} MiB checkpoint | time | peak memory on top of the state |", "|---|---|---|"]
    described = {
        "lightning": "Lightning's default `TorchCheckpointIO` (in memory, then a temp file moved in; no fsync)",
        "ours": "`AtomicCheckpointIO` (streamed to a partial file in the same folder, fsync, `os.replace`)",
    }
    for writer, what in described.items():
        measured = _checkpoint_write(writer, folder / f"{writer}.ckpt", megabytes)
        rows.append(f"| {what} | {measured['s']:.2f} s | {measured['peak_mib']:.0f} MiB |")
    return rows


# ------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.library_choices", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller inputs and fewer repeats")
    parser.add_argument("--only", nargs="+", choices=GROUPS, default=list(GROUPS), help="groups to run")
    args = parser.parse_args(argv)
    cfg = BenchConfig.make(args.quick)
    groups = {"aedat4": aedat4_rows, "nir": nir_rows, "guard": guard_rows, "checkpoint": checkpoint_rows}
    print(machine_description())
    with tempfile.TemporaryDirectory() as folder:
        for name in args.only:
            print(f"\n### {name}\n")
            print("\n".join(groups[name](cfg, Path(folder))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
