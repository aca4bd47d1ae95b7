"""Event streams -> dense tensors: frames, voxel grids, stacked histograms, time surfaces.

Every function takes one sample (an :data:`~event_lightning.events.core.EVENT_DTYPE` array, or any
structured array with fields x, y, t, p, converted by name) plus a :class:`SensorSize`, and
returns a numpy array with the time/bin axis first: ``(T, P, H, W)``. :func:`to_frame_torch`
does the same for a whole batch already on a device and returns ``[T, B, P, H, W]``.

One module per representation, and what they share in one place:

- ``slicing``: :class:`FrameSlicing` and the frame boundaries of every representation cut in time;
- ``pixels``: the events as ``EVENT_DTYPE`` and the flat ``(p, y, x)`` pixel of each (:func:`pixel_index`);
- ``frames``: :func:`to_frame` / :func:`frame_events`, one sample in numpy (tonic's ``ToFrame``);
- ``frames_batched``: :func:`batch_frame_cells`, several streams into one time-first batch;
- ``frames_torch``: :func:`to_frame_torch`, a batch already on a device;
- ``voxel``: :func:`voxel_grid` (tonic's ``ToVoxelGrid``);
- ``histogram``: :func:`stacked_histogram` (RVT, the hybrid pose CNN's input);
- ``time_surfaces``: :func:`time_surface` (tonic's ``ToTimesurface``);
- ``trace``: :func:`double_exponential_trace`, the HG-VAE target, and its weights;
- ``reused_memory``: large outputs written into the memory of an earlier output the caller dropped.

The package re-exports their public names, so ``from event_lightning.events.represent import
to_frame`` keeps working; code in this project imports from the module itself.
"""

from event_lightning.events.represent.frames import frame_events, to_frame
from event_lightning.events.represent.frames_batched import batch_frame_cells
from event_lightning.events.represent.frames_torch import to_frame_torch
from event_lightning.events.represent.histogram import stacked_histogram
from event_lightning.events.represent.pixels import pixel_index
from event_lightning.events.represent.slicing import FRAME_MODES, FrameSlicing
from event_lightning.events.represent.time_surfaces import time_surface
from event_lightning.events.represent.trace import (
    double_exponential_trace,
    double_exponential_weights,
    exponential_filter_taps,
)
from event_lightning.events.represent.voxel import voxel_grid

__all__ = [
    "FRAME_MODES",
    "FrameSlicing",
    "batch_frame_cells",
    "double_exponential_trace",
    "double_exponential_weights",
    "exponential_filter_taps",
    "frame_events",
    "pixel_index",
    "stacked_histogram",
    "time_surface",
    "to_frame",
    "to_frame_torch",
    "voxel_grid",
]
