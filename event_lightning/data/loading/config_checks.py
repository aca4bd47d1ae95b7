"""Checks, before training starts, that data settings fit the recordings they slice.

A time window longer than the recordings does not fail anywhere on its own: framing gives one
frame per sample, or a fixed-length window is zero-padded, and a network then trains on nothing
useful for hours. The DataModules call these functions in ``setup`` on the first recording of the
training split that holds events (usually one file read: cheap even for datasets of thousands of
files), so such a setting stops the run with a message naming the keys and the recording.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from event_lightning.events.core import to_event_array
from event_lightning.events.represent.slicing import FrameSlicing

__all__ = ["CHECKED_RECORDINGS", "check_slicing_fits", "check_window_fits", "first_measurable"]

WINDOW_SLACK = 0.1
"""How much longer than a recording's last event a fixed-length window may be (a fraction)."""

CHECKED_RECORDINGS = 8
"""How many recordings from the start of a split are tried for one to check the settings on."""


def first_measurable(read: Callable[[int], tuple[np.ndarray, str]], count: int) -> tuple[np.ndarray, str] | None:
    """``read(i) -> (events, origin)`` of the first of the first :data:`CHECKED_RECORDINGS` of
    ``count`` recordings that reads without an error and holds at least two events (None if none does).

    A setting is only judged on a recording that can show it is wrong: one that cannot be read,
    or holds no event or a single one (no duration; e.g. an N-MNIST file of overflow markers
    only), says nothing about ``time_window``. Errors are left to the normal loading path, which
    raises or skips such files by ``on_bad_sample`` and names them.
    """
    for index in range(min(count, CHECKED_RECORDINGS)):
        try:
            events, origin = read(index)
        except Exception:  # noqa: BLE001 - the loader reports bad files with their own policy
            continue
        if len(events) >= 2:
            return events, origin
    return None


def _duration_us(events: np.ndarray) -> int:
    t = events["t"]
    return int(t[-1] - t[0]) if len(t) else 0


def check_slicing_fits(raw_events: np.ndarray, spec: FrameSlicing, origin: str) -> None:
    """Raise ValueError when ``spec`` cannot cut ``raw_events`` into more than one frame.

    ``time_window`` longer than the recording, ``event_count`` above its event count, or more
    ``n_event_bins`` than events are settings no sample of the dataset could honour.
    """
    events = to_event_array(raw_events, origin=origin)
    if spec.mode == "time_window" and spec.time_window > (duration := _duration_us(events)):
        raise ValueError(
            f"data.time_window ({spec.time_window:g} µs) is longer than the recording {origin} "
            f"({duration} µs from its first to its last event): every sample would be a single frame; "
            f"set a shorter data.time_window, or data.n_time_bins"
        )
    if spec.mode == "event_count" and spec.event_count > len(events):
        raise ValueError(
            f"data.event_count ({spec.event_count}) is more than the {len(events)} events of the recording "
            f"{origin}: every sample would be a single frame; set a smaller data.event_count, or data.n_event_bins"
        )
    if spec.mode == "n_event_bins" and spec.n_event_bins > len(events):
        raise ValueError(
            f"data.n_event_bins ({spec.n_event_bins}) is more than the {len(events)} events of the recording "
            f"{origin}: frames would be empty; set fewer data.n_event_bins"
        )


def check_window_fits(events: np.ndarray, dt_us: int, n_time_steps: int, origin: str, *, from_zero: bool) -> None:
    """Raise ValueError when ``n_time_steps`` bins of ``dt_us`` are longer than the recording.

    The recording's length is read from its last event, which comes a little before its true
    end, so a window up to :data:`WINDOW_SLACK` longer is accepted (its last bins are partly
    empty, as the reference's are). ``from_zero``: the window is measured from t = 0 (N-MNIST's
    files start at 0) rather than from the first event.
    """
    t = events["t"]
    duration = (int(t[-1]) if len(t) else 0) if from_zero else _duration_us(events)
    window = dt_us * n_time_steps
    if window > duration * (1 + WINDOW_SLACK):
        raise ValueError(
            f"data.dt_us x data.n_time_steps = {dt_us} x {n_time_steps} = {window} µs is longer than the "
            f"recording {origin} ({duration} µs): the windows would be zero-padded; lower data.n_time_steps "
            f"or data.dt_us"
        )
