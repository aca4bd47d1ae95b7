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
from event_lightning.events.represent import (
    FrameSlicing,
    double_exponential_trace,
    double_exponential_weights,
    stacked_histogram,
    time_surface,
    to_frame,
    to_frame_torch,
    voxel_grid,
)
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
