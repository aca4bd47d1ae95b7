"""Both implementations of the event kernels: every test of the representation and filter modules
runs once with the compiled kernels and once with the numpy fallback (what runs where numba
cannot load), so both stay equal to tonic."""

from __future__ import annotations

from pathlib import Path

import pytest

from event_lightning.events.kernels import loading

# every compiled kernel module: each must load, or its functions would silently test the numpy path twice
KERNEL_MODULES = ("frames", "voxel", "filters", "geometry", "search")
# the test modules whose functions have a compiled and a numpy implementation
BOTH_PATHS = {"test_represent", "test_voxel_grid_exact", "test_augment", "test_kernels", "test_reused_memory"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if Path(metafunc.module.__file__).stem in BOTH_PATHS:
        metafunc.parametrize("kernel_path", ["compiled", "numpy"], indirect=True)


@pytest.fixture(autouse=True)
def kernel_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """``"compiled"`` (every kernel module asserted to load: numba is a dependency) or ``"numpy"``
    (the fallback, as if the compiled kernels could not load); tests outside ``BOTH_PATHS`` run as
    the process runs."""
    path = getattr(request, "param", "compiled")
    if path == "numpy":
        use_numpy_fallback(monkeypatch)
    elif hasattr(request, "param"):
        for name in KERNEL_MODULES:
            assert loading.compiled_kernels(name) is not None, loading.fallback_reason()
    return path


def use_numpy_fallback(monkeypatch: pytest.MonkeyPatch, reason: str = "forced by the test") -> None:
    """Make every kernel lookup answer None (no warning: the reason is already recorded)."""
    monkeypatch.setattr(loading, "_loaded", {})
    monkeypatch.setattr(loading, "_fallback_reason", reason)
