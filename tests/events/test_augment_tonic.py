"""The augmentations mix with tonic: called tonic's way, inside ``tonic.transforms.Compose``, and
tonic's transforms (or any callable on events) inside this package's :class:`Compose`."""

from __future__ import annotations

import numpy as np
import pytest
import tonic.transforms as tt

from event_lightning.events import augment as A
from event_lightning.events.core import EVENT_DTYPE, EventFormatError, SensorSize, make_events

SENSOR = SensorSize(40, 30, 2)
# tonic's DVSGesture dtype: other field order and widths, bool polarity
TONIC_DTYPE = np.dtype([("x", "<i8"), ("y", "<i8"), ("p", "?"), ("t", "<i8")])

EVERY_TRANSFORM = [
    A.FlipLR(p=0.5),
    A.FlipUD(p=0.5),
    A.FlipPolarity(p=0.5),
    A.CenterCrop(size=(24, 20)),
    A.RandomCrop(size=(24, 20)),
    A.Downsample(spatial_factor=0.5, time_factor=0.5),
    A.SpatialJitter(var_x=2, var_y=1, sigma_xy=0.5),
    A.TimeJitter(std=300),
    A.DropEvent(p=(0.1, 0.3)),
    A.DropByTime(duration_ratio=(0.1, 0.3)),
    A.DropByArea(area_ratio=(0.1, 0.3)),
    A.Denoise(filter_time=3_000),
    A.RefractoryPeriod(delta=(100, 400)),
]


def _stream(seed: int, n: int = 3_000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, 50_000, n))
    return make_events(rng.integers(0, SENSOR.width, n), rng.integers(0, SENSOR.height, n), t, rng.integers(0, 2, n))


def _tonic_events(events: np.ndarray) -> np.ndarray:
    out = np.empty(len(events), dtype=TONIC_DTYPE)
    for name in "xytp":
        out[name] = events[name]
    return out


def _with_sensor(transform: A.SensorTransform, sensor: SensorSize) -> A.SensorTransform:
    return type(transform)(**{**vars(transform), "sensor_size": sensor.as_tonic()})


@pytest.mark.parametrize("transform", EVERY_TRANSFORM, ids=lambda t: type(t).__name__)
def test_both_call_styles_give_the_same_events_for_the_same_generator(transform: A.SensorTransform) -> None:
    events = _stream(0)
    ours, _ = transform(events, SENSOR, np.random.default_rng(7))
    tonic_style = _with_sensor(transform, SENSOR)(_tonic_events(events), rng=np.random.default_rng(7))
    assert tonic_style.dtype == TONIC_DTYPE  # back in the caller's dtype
    for name in "xytp":
        np.testing.assert_array_equal(tonic_style[name], ours[name].astype(TONIC_DTYPE[name]))


@pytest.mark.parametrize("transform", EVERY_TRANSFORM, ids=lambda t: type(t).__name__)
def test_tonic_style_call_draws_from_numpy_global_state(transform: A.SensorTransform) -> None:
    tonic_style = _with_sensor(transform, SENSOR)
    events = _stream(1)
    np.random.seed(5)
    first = tonic_style(events)
    np.random.seed(5)
    np.testing.assert_array_equal(tonic_style(events), first)


def test_ours_inside_tonic_compose_equal_ours_alone() -> None:
    events = _tonic_events(_stream(2))
    cropped = SensorSize(30, 24, 2)
    members = [
        A.Denoise(filter_time=3_000),
        A.SpatialJitter(var_x=1, var_y=1),
        A.FlipPolarity(p=0.5),
        A.CenterCrop(size=(30, 24)),
        A.DropByArea(area_ratio=0.2),
    ]
    # inside tonic's Compose every transform holds its own sensor: the crop's output for the last one
    sensors = [SENSOR, SENSOR, SENSOR, SENSOR, cropped]
    in_tonic = tt.Compose([_with_sensor(t, s) for t, s in zip(members, sensors, strict=True)])
    np.random.seed(11)
    tonic_out = in_tonic(events)
    np.random.seed(11)
    ours_tonic_way = A.Compose(members, sensor_size=SENSOR.as_tonic())(events)
    np.testing.assert_array_equal(tonic_out, ours_tonic_way)
    deterministic = [A.Denoise(filter_time=3_000), A.RefractoryPeriod(delta=200), A.CenterCrop(size=(30, 24))]
    in_tonic = tt.Compose([_with_sensor(t, SENSOR) for t in deterministic])(events)
    ours, sensor = A.Compose(deterministic)(events, SENSOR, None)
    assert sensor == cropped and ours.dtype == EVENT_DTYPE
    for name in "xytp":
        np.testing.assert_array_equal(in_tonic[name], ours[name].astype(TONIC_DTYPE[name]))


def test_compose_takes_tonic_transforms_and_any_callable_reproducibly() -> None:
    events = _stream(3)
    pipeline = A.Compose(
        [
            tt.Denoise(filter_time=3_000),
            A.SpatialJitter(var_x=1, var_y=1),
            tt.DropEvent(p=0.2),  # tonic draws from numpy's global state
            lambda ev: ev[ev["p"] == 1],
        ]
    )
    np.random.seed(0)
    outside = np.random.get_state()[1].copy()
    first, sensor = pipeline(events, SENSOR, np.random.default_rng(3))
    np.testing.assert_array_equal(np.random.get_state()[1], outside)  # the global state is restored
    again, _ = pipeline(events, SENSOR, np.random.default_rng(3))
    other, _ = pipeline(events, SENSOR, np.random.default_rng(4))
    assert sensor == SENSOR and first.dtype == EVENT_DTYPE and (first["p"] == 1).all()
    np.testing.assert_array_equal(first, again)
    assert len(first) != len(other) or not np.array_equal(first, other)
    assert len(first) < len(A.denoise(events, 3_000))


def test_tonic_style_errors_are_clear() -> None:
    with pytest.raises(ValueError, match=r"SpatialJitter\(\.\.\., sensor_size=\(W, H, P\)\)"):
        A.SpatialJitter()(_stream(4))
    with pytest.raises(TypeError, match="callable"):
        A.Compose([A.Denoise(filter_time=10), 3])
    extra = np.zeros(3, dtype=[("x", "i2"), ("y", "i2"), ("t", "i8"), ("p", "i1"), ("camera", "i1")])
    with pytest.raises(EventFormatError, match=r"would drop \['camera'\]"):
        A.Denoise(filter_time=10)(extra)
    with pytest.raises(ValueError, match="needs an rng"):
        A.SpatialJitter()(_stream(4), SENSOR, None)
