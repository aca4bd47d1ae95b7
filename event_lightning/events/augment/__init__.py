"""Event -> event augmentations and filters, vectorised, with explicit random generators.

Each function takes one sample (:data:`EVENT_DTYPE`, or any structured array with x, y, t, p,
converted by name), never modifies its input, and returns a new time-sorted event array;
transforms that change the geometry (crops, downsampling) also return the new
:class:`SensorSize`. Randomness comes only from the ``rng`` (:class:`numpy.random.Generator`)
argument, so a data loader worker can seed it per sample.

Deterministic filters reproduce tonic 1.7 exactly (same kept events): :func:`denoise` ==
``Denoise``, :func:`refractory_period` == ``RefractoryPeriod``, :func:`downsample` ==
``Downsample``, :func:`center_crop` == ``CenterCrop``, and the flips at ``p`` = 0 or 1. tonic's
filters loop over events in Python; here they are sorts and searchsorted calls.

One module per kind of augmentation:

- ``geometry``: flips, crops and downsampling;
- ``jitter``: Gaussian shifts in space and time;
- ``drops``: dropping events at random, by time interval or by area;
- ``filters``: :func:`denoise` and :func:`refractory_period`;
- ``transforms``: frozen dataclasses wrapping the functions, callable as
  ``transform(events, sensor_size, rng) -> (events, sensor_size)`` and tonic's way,
  ``transform(events) -> events`` (sensor in their ``sensor_size`` field), so a pipeline can be
  listed in a config and chained with :class:`Compose`, which also takes tonic's transforms;
- ``tonic_boundary``: event dtypes and random generators where they meet tonic's;
- ``common``: the input checks and parameter draws they share.

The package re-exports every public name, so ``augment.denoise`` and ``from
event_lightning.events.augment import Compose`` keep working.
"""

from event_lightning.events.augment.common import Range, Transformed
from event_lightning.events.augment.drops import drop_by_area, drop_by_time, drop_event
from event_lightning.events.augment.filters import denoise, refractory_period
from event_lightning.events.augment.geometry import (
    center_crop,
    crop,
    downsample,
    flip_lr,
    flip_polarity,
    flip_ud,
    random_crop,
)
from event_lightning.events.augment.jitter import spatial_jitter, time_jitter
from event_lightning.events.augment.transforms import (
    CenterCrop,
    Compose,
    Denoise,
    Downsample,
    DropByArea,
    DropByTime,
    DropEvent,
    EventTransform,
    FlipLR,
    FlipPolarity,
    FlipUD,
    RandomCrop,
    RefractoryPeriod,
    SensorTransform,
    SpatialJitter,
    TimeJitter,
)

__all__ = [
    "CenterCrop",
    "Compose",
    "Denoise",
    "Downsample",
    "DropByArea",
    "DropByTime",
    "DropEvent",
    "EventTransform",
    "FlipLR",
    "FlipPolarity",
    "FlipUD",
    "RandomCrop",
    "Range",
    "RefractoryPeriod",
    "SensorTransform",
    "SpatialJitter",
    "TimeJitter",
    "Transformed",
    "center_crop",
    "crop",
    "denoise",
    "downsample",
    "drop_by_area",
    "drop_by_time",
    "drop_event",
    "flip_lr",
    "flip_polarity",
    "flip_ud",
    "random_crop",
    "refractory_period",
    "spatial_jitter",
    "time_jitter",
]
