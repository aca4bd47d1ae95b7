"""Reused output memory (``represent.reused_memory``): a buffer is handed out again only once
nothing refers to it, so an output the caller still holds, or any view of it, never changes."""

from __future__ import annotations

import numpy as np
import torch

from event_lightning.events.core import SensorSize
from event_lightning.events.represent import reused_memory
from event_lightning.events.represent.frames import to_frame
from event_lightning.events.represent.reused_memory import MIN_REUSED_BYTES, empty_output
from tests.events.test_kernels import random_stream

LARGE = MIN_REUSED_BYTES // 2  # int16 elements: the smallest size that is reused


def test_a_dropped_output_is_reused_and_a_held_one_or_its_views_never_are(monkeypatch) -> None:
    monkeypatch.setattr(reused_memory, "_kept", [])
    first = empty_output(LARGE, np.int16)
    address = first.ctypes.data
    holders = {
        "the array": lambda a: a,
        "a slice": lambda a: a[5:],
        "a reshape": lambda a: a.reshape(2, -1),
        "a tensor": torch.from_numpy,
        "a memoryview": memoryview,
    }
    for name, hold in holders.items():
        held = hold(first)
        del first
        other = empty_output(LARGE, np.int16)
        assert other.ctypes.data != address, f"handed out again while {name} of it was held"
        del held, other
        first = empty_output(LARGE, np.int16)
        assert first.ctypes.data == address, f"not reused once {name} of it was dropped"


def test_small_and_odd_sized_outputs_are_fresh_arrays(monkeypatch) -> None:
    monkeypatch.setattr(reused_memory, "_kept", [])
    small = empty_output(10, np.float64)
    assert small.shape == (10,) and small.dtype == np.float64 and reused_memory._kept == []
    address = empty_output(LARGE, np.int16).ctypes.data
    assert empty_output(LARGE + 1, np.int16).ctypes.data != address  # another length: not that buffer
    assert empty_output(LARGE, np.int16).ctypes.data == address


def test_to_frame_outputs_held_by_the_caller_keep_their_counts(kernel_path: str, monkeypatch) -> None:
    """Outputs above the reuse threshold, computed one after the other: the ones still held are
    never overwritten by the later calls; a dropped one is reused by the compiled path."""
    monkeypatch.setattr(reused_memory, "_kept", [])
    sensor = SensorSize(128, 128, 2)  # 64 KiB per frame: 100 frames are above the threshold
    rng = np.random.default_rng(3)
    streams = [random_stream(rng, sensor, n=20_000) for _ in range(4)]
    options = dict(n_event_bins=100)
    outputs = [to_frame(events, sensor, **options) for events in streams]
    assert outputs[0].nbytes >= MIN_REUSED_BYTES
    expected = [output.copy() for output in outputs]
    for index, events in enumerate(streams):
        np.testing.assert_array_equal(outputs[index], expected[index])
        assert expected[index].sum() == len(events)
    address = outputs[-1].ctypes.data
    del outputs[-1]
    again = to_frame(streams[0], sensor, **options)
    np.testing.assert_array_equal(again, expected[0])
    if kernel_path == "compiled":  # the numpy fallback allocates with np.zeros, as before
        assert again.ctypes.data == address
