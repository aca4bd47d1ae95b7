"""The compiled kernels raise exactly the numpy path's errors, and which implementation runs when:
the numpy fallback (with one warning) where numba cannot load, compiling without a cache where
numba finds no writable cache directory."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import setuptools
from numba import types

from event_lightning.events.augment import denoise, downsample, refractory_period
from event_lightning.events.core import SensorSize, make_events
from event_lightning.events.kernels import compiler, loading
from event_lightning.events.represent.frames import frame_events, to_frame
from event_lightning.events.represent.slicing import FrameSlicing
from event_lightning.events.represent.voxel import voxel_grid

from .conftest import use_numpy_fallback

REPO = Path(__file__).resolve().parents[2]
SENSOR = SensorSize(37, 23, 2)
OPERATIONS: dict[str, Callable[[np.ndarray], object]] = {
    "to_frame(time_window)": lambda ev: to_frame(ev, SENSOR, time_window=3_000, overlap=1_000),
    "to_frame(event_count)": lambda ev: to_frame(ev, SENSOR, event_count=50, include_incomplete=True),
    "to_frame(n_time_bins)": lambda ev: to_frame(ev, SENSOR, n_time_bins=4, overlap=0.5),
    "to_frame(n_event_bins)": lambda ev: to_frame(ev, SENSOR, n_event_bins=5),
    "to_frame(window past the events)": lambda ev: to_frame(ev, SENSOR, time_window=500, start_time=90_000),
    "to_frame(single polarity)": lambda ev: to_frame(ev, SensorSize(37, 23, 1), n_event_bins=3),
    "voxel_grid": lambda ev: voxel_grid(ev, SENSOR, 6),
    "denoise": lambda ev: denoise(ev, 1_000),
    "refractory_period": lambda ev: refractory_period(ev, 100),
    "refractory_period(kept)": lambda ev: refractory_period(ev, 100, reference="kept"),
}


def _stream(seed: int, n: int = 400) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x, y = rng.integers(0, SENSOR.width, n), rng.integers(0, SENSOR.height, n)
    return make_events(x, y, np.sort(rng.integers(0, 50_000, n)), [1] * n)


def _corrupted(kind: str, index: int) -> np.ndarray:
    """A stream (polarity 1 throughout, so single-polarity sensors accept it) broken at ``index``."""
    events = _stream(index)
    field, value = {
        "x past the sensor": ("x", SENSOR.width),
        "negative x": ("x", -1),
        "y past the sensor": ("y", SENSOR.height),
        "negative y": ("y", -3),
        "polarity 2": ("p", 2),
        "negative polarity": ("p", -1),
        "time going back": ("t", int(events["t"][index - 1]) - 1 if index else 0),
        "negative first time": ("t", -5),
        "last time before the first": ("t", -1),
    }[kind]
    events[field][0 if kind == "negative first time" else -1 if kind.startswith("last") else index] = value
    if kind == "last time before the first":
        events["t"][-1] = events["t"][0] - 1
    return events


def _outcome(fn: Callable[[], object]) -> tuple[str, str]:
    """The error's type and message, or the result's bytes when there is no error (the filters do
    not check the sensor: x past it is no error there)."""
    try:
        result = fn()
    except Exception as error:  # noqa: BLE001 - the type and message are what is compared
        return type(error).__name__, str(error)
    return "no error", np.asarray(result).tobytes().hex()


@pytest.mark.parametrize("operation", OPERATIONS)
@pytest.mark.parametrize(
    "kind",
    [
        "x past the sensor",
        "negative x",
        "y past the sensor",
        "negative y",
        "polarity 2",
        "negative polarity",
        "time going back",
        "negative first time",
        "last time before the first",
    ],
)
def test_invalid_events_raise_what_the_numpy_path_raises(operation: str, kind: str, monkeypatch) -> None:
    assert loading.compiled_kernels("frames") is not None
    for index in (0, 1, 150, 399):  # first event, second, inside (in a frame, between frames), last
        events = _corrupted(kind, index)
        compiled = _outcome(lambda ev=events: OPERATIONS[operation](ev))
        with monkeypatch.context() as patch:
            use_numpy_fallback(patch)
            expected = _outcome(lambda ev=events: OPERATIONS[operation](ev))
        assert compiled == expected, (kind, index)


def test_mixed_polarities_on_a_single_polarity_sensor_raise_the_numpy_error(monkeypatch) -> None:
    events = _stream(3)
    events["p"][200] = 0
    single = SensorSize(37, 23, 1)
    compiled = _outcome(lambda: to_frame(events, single, n_time_bins=3))
    with monkeypatch.context() as patch:
        use_numpy_fallback(patch)
        assert _outcome(lambda: to_frame(events, single, n_time_bins=3)) == compiled
    assert compiled[0] == "ValueError" and "single-polarity" in compiled[1]


def test_checked_frames_still_raise_validates_error() -> None:
    # the numpy path trusts checked=True (wrong counts or an IndexError); the compiled pass checks anyway
    events = _stream(4)
    events["x"][17] = SENSOR.width
    name, message = _outcome(lambda: frame_events(events, SENSOR, FrameSlicing(n_time_bins=3), checked=True))
    assert name == "EventFormatError" and "x outside [0, 37)" in message and "index 17" in message


def test_fallback_when_numba_cannot_be_imported_warns_once(monkeypatch) -> None:
    events = _stream(5)
    expected = to_frame(events, SENSOR, time_window=2_000)
    monkeypatch.setattr(loading, "_loaded", {})
    monkeypatch.setattr(loading, "_fallback_reason", None)
    monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` raises ImportError
    with pytest.warns(RuntimeWarning, match="numba cannot be imported"):
        frames = to_frame(events, SENSOR, time_window=2_000)
    np.testing.assert_array_equal(frames, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process, not per call or per kernel
        voxel_grid(events, SENSOR, 3)
        downsample(events, SENSOR, spatial_factor=0.5)
    assert loading.compiled_kernels("voxel") is None
    assert "numba cannot be imported" in loading.fallback_reason()


@pytest.mark.parametrize(
    "variable, value, reason", [("EVENT_LIGHTNING_KERNELS", "numpy", "EVENT_LIGHTNING_KERNELS=numpy")]
)
def test_environment_switch_selects_the_numpy_path(variable: str, value: str, reason: str, monkeypatch) -> None:
    monkeypatch.setattr(loading, "_loaded", {})
    monkeypatch.setattr(loading, "_fallback_reason", None)
    monkeypatch.setenv(variable, value)
    with pytest.warns(RuntimeWarning, match=reason):
        assert loading.compiled_kernels("frames") is None


def test_disabled_jit_selects_the_numpy_path(monkeypatch) -> None:
    import numba

    monkeypatch.setattr(loading, "_loaded", {})
    monkeypatch.setattr(loading, "_fallback_reason", None)
    monkeypatch.setattr(numba.config, "DISABLE_JIT", True)
    with pytest.warns(RuntimeWarning, match="NUMBA_DISABLE_JIT"):
        assert loading.compiled_kernels("voxel") is None


def test_kernels_compile_without_a_writable_cache_directory(monkeypatch) -> None:
    # numba looks for a writable cache in NUMBA_CACHE_DIR, next to the sources, then in ~/.cache;
    # with none (a read-only install and home), cache=True raises: the kernels compile uncached
    from numba.core import caching

    cache_impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl  # renamed in numba 0.6x
    monkeypatch.setattr(cache_impl, "_locator_classes", [])
    monkeypatch.setattr(compiler, "_warned_uncached", False)

    def add_one(x):
        return x + 1

    with pytest.warns(RuntimeWarning, match="no writable cache directory"):
        compiled = compiler.jit(types.int64(types.int64))(add_one)
    assert compiled(41) == 42
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert compiler.jit(types.int64(types.int64))(add_one)(1) == 2  # warned once per process


def test_importing_the_events_package_does_not_load_numba() -> None:
    # numba's import and start-up (about a second) are paid by the first kernel call only
    code = "import sys, event_lightning.events; print('numba' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=_child_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_the_kernels_package_is_found_by_the_package_build() -> None:
    # setuptools' find (pyproject: include event_lightning*) only lists folders with an __init__.py
    packages = setuptools.find_packages(str(REPO), include=["event_lightning*"])
    assert "event_lightning.events.kernels" in packages


def _child_env() -> dict[str, str]:
    """This checkout first on the child's path (the editable install may point elsewhere)."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
