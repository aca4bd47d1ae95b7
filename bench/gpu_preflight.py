"""``python -m bench --gpu-preflight``: one command that shows a GPU machine can run every method.

On CUDA (the default when a GPU is visible) it

1. trains every config on its stand-in with its real shapes (:mod:`bench.config_cases`; one config
   per compiled-graph group, one config of each method first), each in a process of its own
   (:mod:`bench.preflight_case`): eager float32 under HostSyncGuard -- which on CUDA turns on
   ``torch.cuda.set_sync_debug_mode("error")`` for the checked steps -- and compiled in bf16-mixed,
   on the same seed; checks that their first losses agree and reports the first compiled step
   (compilation included), steps/s and samples/s of the compiled step, samples/s of the train
   loader as the trainer builds it (workers, pinning), and the peak device memory;
2. times the on-device binning (``to_frame_torch``) of a batch against tonic's ``ToFrame`` on the
   host, and the LIF classifier's training step against norse's on the same GPU, with agreement;
3. prints a pass/fail summary and writes a GPU section into ``docs/performance.md`` naming the GPU,
   leaving the rest of the page as it is.

A config that fails is a failed row with its error; the run goes on. The configs share a time
budget (``--budget-s``, 450 s by default, so the whole command stays under 8 minutes on an
H200-class GPU): what the budget leaves out is listed as not run. ``--device cpu --tiny`` runs the
same path on the CPU with batches of 2 and two steps (the test that keeps this command working);
there the host-sync detector patches the tensor methods instead of CUDA's sync debug mode.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.config_cases import ONE_PER_METHOD, REPO_ROOT, case_named, one_per_graph
from bench.page import write_gpu_section
from bench.table import format_bytes

DEFAULT_BUDGET_S = 450.0
_POLL_S = 0.5


@dataclass
class PreflightOptions:
    """What ``--gpu-preflight`` runs (see :func:`main` for the flags)."""

    device: str
    tiny: bool = False
    configs: list[str] = field(default_factory=list)
    budget_s: float = DEFAULT_BUDGET_S
    jobs: int = 1
    output: Path | None = None


def default_configs() -> list[str]:
    """One config per method, then one per remaining compiled-graph group."""
    names = list(ONE_PER_METHOD)
    names += [case.name for case in one_per_graph() if case.graph not in {case_named(n).graph for n in names}]
    return names


def _not_run(name: str, reason: str) -> dict[str, Any]:
    return {"config": name, "ok": False, "error": reason, "not_run": True}


def run_configs(options: PreflightOptions, workdir: Path, deadline: float) -> list[dict[str, Any]]:
    """Every selected config in its own process, ``options.jobs`` at a time, until ``deadline``
    (``time.monotonic()``). Configs that share a stand-in folder wait until one of them has
    written it. Returns one row per config, in the selection's order."""
    pending = list(options.configs)
    running: dict[str, tuple[subprocess.Popen, Path, str]] = {}
    rows: dict[str, dict[str, Any]] = {}
    written: set[str] = set()
    threads = max(1, (os.cpu_count() or 1) // max(1, options.jobs))
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    while pending or running:
        now = time.monotonic()
        if now >= deadline:
            for name, (process, _, _) in running.items():
                process.kill()
                rows[name] = _not_run(name, f"stopped: the time budget ({options.budget_s:.0f} s) ran out")
            for name in pending:
                rows[name] = _not_run(name, f"not run: the time budget ({options.budget_s:.0f} s) ran out")
            break
        for name, (process, out, standin) in list(running.items()):
            if process.poll() is None:
                continue
            del running[name]
            written.add(standin)
            if out.is_file():
                rows[name] = json.loads(out.read_text())
            else:
                log = process.stdout.read()[-2000:] if process.stdout else ""
                rows[name] = {"config": name, "ok": False, "error": f"exit status {process.returncode}: {log}"}
        busy = {standin for _, _, standin in running.values()}
        for name in list(pending):
            if len(running) >= options.jobs:
                break
            try:
                standin = case_named(name).standin
            except KeyError as error:
                rows[name] = {"config": name, "ok": False, "error": str(error)}
                pending.remove(name)
                continue
            if standin not in written and standin in busy:
                continue  # another config is writing this stand-in
            out = workdir / "rows" / f"{name}.json"
            out.parent.mkdir(parents=True, exist_ok=True)
            command = [sys.executable, "-m", "bench.preflight_case", name, "--workdir", str(workdir)]
            command += ["--device", options.device, "--out", str(out)] + (["--tiny"] if options.tiny else [])
            process = subprocess.Popen(
                command, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            running[name] = (process, out, standin)
            busy.add(standin)
            pending.remove(name)
        time.sleep(_POLL_S)
    return [rows[name] for name in options.configs]


def _synchronized(fn: Callable[[], Any], device: torch.device) -> Callable[[], Any]:
    def call() -> Any:
        result = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return result

    return call


def _timed(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def lif_vs_norse(device: torch.device, tiny: bool) -> dict[str, Any]:
    """The POKER-DVS classifier's training step (fwd, bwd, Adam), ours eager and compiled vs norse 1.1."""
    from bench.rows_lif import (
        DT,
        LIF_P,
        READOUT_P,
        ClassifierShape,
        build_norse_classifier,
        classifier_agreement,
        sparse_frames,
        train_step,
    )
    from event_lightning.nn.lif import LIFClassifierNet

    shape = ClassifierShape(time_steps=20, batch=4) if tiny else ClassifierShape()
    torch.manual_seed(0)
    ours = LIFClassifierNet(shape.inputs, shape.hidden, shape.classes, LIF_P, READOUT_P, DT).to(device)
    norse_forward, norse_params = build_norse_classifier(ours, device)
    frames, labels = (t.to(device) for t in sparse_frames(shape))
    agree = classifier_agreement(ours, norse_forward, norse_params, frames, labels)
    repeats = 2 if tiny else 10
    ours_opt = torch.optim.Adam(ours.parameters(), lr=2e-3)
    norse_opt = torch.optim.Adam(norse_params, lr=2e-3)
    ours_s = _timed(_synchronized(lambda: train_step(ours, ours_opt, frames, labels), device), repeats)
    norse_s = _timed(_synchronized(lambda: train_step(norse_forward, norse_opt, frames, labels), device), repeats)
    ours.lif.compile()
    start = time.perf_counter()
    _synchronized(lambda: train_step(ours, ours_opt, frames, labels), device)()
    compile_s = time.perf_counter() - start
    compiled_s = _timed(_synchronized(lambda: train_step(ours, ours_opt, frames, labels), device), repeats)
    return {
        "size": f"T={shape.time_steps} B={shape.batch} {shape.inputs}->{shape.hidden}->{shape.classes}",
        "ours_s": ours_s,
        "compiled_s": compiled_s,
        "first_compiled_s": compile_s,
        "norse_s": norse_s,
        "agreement": agree,
        "ok": not agree.startswith("NO"),
    }


def binning_vs_tonic(device: torch.device, tiny: bool) -> dict[str, Any]:
    """``to_frame_torch`` on ``device`` for a batch of DVSGesture-like streams vs tonic's ``ToFrame``
    per recording on the host (1 s recordings, 10 ms frames); the frames must be identical."""
    import tonic.transforms as tt

    from bench.rows_represent import GESTURE_SENSOR, gesture_like_events
    from event_lightning.events.represent.frames_torch import to_frame_torch

    batch, n_events = (2, 5_000) if tiny else (32, 100_000)
    window_us, duration_us = 10_000, 1_000_000
    streams = [gesture_like_events(n_events, seed=b, duration_us=duration_us) for b in range(batch)]
    n_frames = duration_us // window_us
    fields = {name: torch.from_numpy(np.concatenate([s[name] for s in streams]).astype(np.int64)) for name in "xytp"}
    on_device = {name: value.to(device) for name, value in fields.items()}
    batch_index = torch.repeat_interleave(torch.arange(batch), n_events).to(device)
    peer = tt.ToFrame(sensor_size=GESTURE_SENSOR.as_tonic(), time_window=window_us)

    def ours() -> torch.Tensor:
        return to_frame_torch(
            on_device["x"], on_device["y"], on_device["t"], on_device["p"], batch_index, GESTURE_SENSOR, batch,
            time_window=window_us, n_frames=n_frames,
        )  # fmt: skip

    def theirs() -> list[np.ndarray]:
        return [peer(stream) for stream in streams]

    repeats = 2 if tiny else 5
    ours_s = _timed(_synchronized(ours, device), repeats)
    peer_s = _timed(theirs, repeats)
    frames = ours().cpu()
    expected = np.zeros(tuple(frames.shape), dtype=np.float32)
    for b, stream_frames in enumerate(theirs()):
        steps = min(len(stream_frames), n_frames)
        expected[:steps, b] = stream_frames[:steps]
    same = np.array_equal(frames.numpy(), expected)
    return {
        "size": f"{batch} recordings x {n_events} events, {n_frames} frames of {window_us // 1000} ms, 128x128",
        "ours_s": ours_s,
        "peer_s": peer_s,
        "agreement": "identical frames" if same else "DIFFERENT frames",
        "ok": same,
    }


def _guarded(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    try:
        return fn()
    except Exception as error:  # noqa: BLE001 - one failing row must not stop the preflight
        return {"name": name, "ok": False, "error": f"{type(error).__name__}: {error}"}


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g} s" if value >= 0.01 else f"{value * 1e3:.3g} ms"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def config_table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown table of the per-config rows."""
    lines = [
        "| config | result | first compiled step | compiled step (eager) | samples/s step | samples/s loader "
        "| peak memory | agreement / error |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        status = "not run" if row.get("not_run") else "pass" if row.get("ok") else "FAIL"
        if row.get("error") or "compiled_step_s" not in row:
            lines.append(f"| {row['config']} | {status} | | | | | | {str(row.get('error', '')).splitlines()[0]} |")
            continue
        peak = "-" if row.get("peak_bytes") is None else format_bytes(row["peak_bytes"])
        lines.append(
            f"| {row['config']} (batch {row['batch_size']}) | {status} | {_seconds(row['first_compiled_step_s'])} "
            f"| {_seconds(row['compiled_step_s'])} ({_seconds(row['eager_step_s'])}) "
            f"| {_rate(row['step_samples_per_s'])} | {_rate(row['loader_samples_per_s'])} | {peak} "
            f"| {row['agreement']} |"
        )
    return lines


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        cuda = torch.version.cuda or "?"
        return f"{torch.cuda.get_device_name(device)} (CUDA {cuda}, torch {torch.__version__})"
    return f"CPU ({os.cpu_count()} cores, torch {torch.__version__})"


def render_section(
    device: torch.device, options: PreflightOptions, rows: list[dict[str, Any]], extra: dict[str, dict], elapsed: float
) -> str:
    """The GPU section of docs/performance.md."""
    lif, binning = extra["lif"], extra["binning"]
    passed = sum(1 for r in rows if r.get("ok"))
    lines = [
        "## GPU preflight",
        "",
        f"Written by `python -m bench --gpu-preflight` on **{device_name(device)}**, {time.strftime('%Y-%m-%d')}; "
        f"{passed} of {len(rows)} configs passed in {elapsed:.0f} s{' (tiny shapes)' if options.tiny else ''}.",
        "",
        "Each config trains on its stand-in with its real shapes, eager float32 under HostSyncGuard "
        "(CUDA sync debug mode `error` on the checked steps) and compiled in bf16-mixed on the same "
        "seed; *agreement* compares their first training losses. *First compiled step* includes "
        "compilation; the compiled step is the median of the later steps; the loader pass uses the "
        "trainer's settings (workers, pinned memory) without a step in between.",
        "",
        *config_table(rows),
        "",
        "| operation | size | ours | peer | agreement |",
        "| --- | --- | --- | --- | --- |",
    ]
    if "error" in lif:
        lines.append(f"| LIF classifier train step | | | norse 1.1 | FAIL: {lif['error']} |")
    else:
        lines.append(
            f"| LIF classifier train step (fwd+bwd+Adam) | {lif['size']} | {_seconds(lif['ours_s'])} eager, "
            f"{_seconds(lif['compiled_s'])} compiled (first {_seconds(lif['first_compiled_s'])}) "
            f"| norse 1.1: {_seconds(lif['norse_s'])} | {lif['agreement']} |"
        )
    if "error" in binning:
        lines.append(f"| to_frame_torch on the device | | | tonic ToFrame | FAIL: {binning['error']} |")
    else:
        lines.append(
            f"| to_frame_torch on the device | {binning['size']} | {_seconds(binning['ours_s'])} "
            f"| tonic ToFrame on the host: {_seconds(binning['peer_s'])} | {binning['agreement']} |"
        )
    return "\n".join(lines) + "\n"


def summary_lines(rows: list[dict[str, Any]], extra: dict[str, dict]) -> list[str]:
    """The plain-text pass/fail summary printed at the end."""
    lines = []
    for row in rows:
        status = "NOT RUN" if row.get("not_run") else "PASS" if row.get("ok") else "FAIL"
        detail = row.get("error") or row.get("agreement", "")
        if "first_compiled_step_s" in row and not row.get("error"):
            detail = f"first compiled step {row['first_compiled_step_s']:.1f} s; {detail}"
        lines.append(f"{status:8s} {row['config']}: {str(detail).splitlines()[0] if detail else ''}")
    for name, row in extra.items():
        status = "PASS" if row.get("ok") else "FAIL"
        lines.append(f"{status:8s} {name}: {row.get('error') or row.get('agreement')}")
    return lines


def run_preflight(options: PreflightOptions) -> tuple[list[dict[str, Any]], dict[str, dict], float]:
    """Rows of every config and of the two device comparisons, and the elapsed seconds."""
    start = time.monotonic()
    device = torch.device(options.device)
    extra = {
        "lif": _guarded("lif", lambda: lif_vs_norse(device, options.tiny)),
        "binning": _guarded("binning", lambda: binning_vs_tonic(device, options.tiny)),
    }
    with tempfile.TemporaryDirectory(prefix="el_gpu_preflight_") as tmp:
        rows = run_configs(options, Path(tmp), start + options.budget_s)
    return rows, extra, time.monotonic() - start


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The preflight's flags (they join ``python -m bench``'s)."""
    group = parser.add_argument_group("--gpu-preflight")
    group.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto", help="auto: cuda when visible")
    group.add_argument("--tiny", action="store_true", help="batches of 2, two steps (the CPU test of this command)")
    group.add_argument("--configs", nargs="+", default=None, help="config names (default: one per graph group)")
    group.add_argument("--budget-s", type=float, default=DEFAULT_BUDGET_S, help="time for the configs, in seconds")
    group.add_argument("--jobs", type=int, default=None, help="configs at a time (default: 4 on CUDA, 1 on the CPU)")


def main(args: argparse.Namespace) -> int:
    """Run the preflight; write the GPU section (on CUDA into docs/performance.md, elsewhere only
    into ``--output``); exit status 1 when a config or a comparison failed."""
    device = args.device if args.device != "auto" else "cuda" if torch.cuda.is_available() else "cpu"
    output = args.output or (str(REPO_ROOT / "docs" / "performance.md") if device == "cuda" else None)
    options = PreflightOptions(
        device=device,
        tiny=args.tiny,
        configs=args.configs or default_configs(),
        budget_s=args.budget_s,
        jobs=args.jobs or (4 if device == "cuda" else 1),
        output=Path(output) if output else None,
    )
    print(f"GPU preflight on {device_name(torch.device(device))}: {len(options.configs)} configs", flush=True)
    rows, extra, elapsed = run_preflight(options)
    print("\n".join(summary_lines(rows, extra)))
    print(f"total {elapsed:.0f} s; {sum(1 for r in rows if r.get('ok'))} of {len(rows)} configs passed")
    if options.output is not None:
        write_gpu_section(options.output, render_section(torch.device(device), options, rows, extra, elapsed))
        print(f"wrote the GPU section of {options.output}")
    failed = any(not r.get("ok") for r in rows) or any(not r.get("ok") for r in extra.values())
    return 1 if failed else 0


__all__ = ["PreflightOptions", "add_arguments", "default_configs", "main", "run_configs"]
