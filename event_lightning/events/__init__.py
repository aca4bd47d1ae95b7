"""Raw events: the event contract, readers/writers, representations, augmentation, simulation.

No Lightning and no networks here.
"""

from event_lightning.events import augment
from event_lightning.events.core import (
    EVENT_DTYPE,
    EventFormatError,
    SensorSize,
    make_events,
    to_event_array,
    validate,
)
from event_lightning.events.represent.frames import to_frame
from event_lightning.events.represent.frames_torch import to_frame_torch
from event_lightning.events.represent.histogram import stacked_histogram
from event_lightning.events.represent.slicing import FrameSlicing
from event_lightning.events.represent.time_surfaces import time_surface
from event_lightning.events.represent.trace import double_exponential_trace, double_exponential_weights
from event_lightning.events.represent.voxel import voxel_grid
from event_lightning.events.simulate import SimulatorConfig, simulate_events

__all__ = [
    "EVENT_DTYPE",
    "EventFormatError",
    "FrameSlicing",
    "SensorSize",
    "SimulatorConfig",
    "augment",
    "double_exponential_trace",
    "double_exponential_weights",
    "make_events",
    "simulate_events",
    "stacked_histogram",
    "time_surface",
    "to_event_array",
    "to_frame",
    "to_frame_torch",
    "validate",
    "voxel_grid",
]
