"""Raw events: the event contract, readers/writers, representations, augmentation, simulation.

No Lightning and no networks here.
"""

from event_lightning.events.core import (
    EVENT_DTYPE,
    EventFormatError,
    SensorSize,
    make_events,
    to_event_array,
    validate,
)

__all__ = ["EVENT_DTYPE", "EventFormatError", "SensorSize", "make_events", "to_event_array", "validate"]
