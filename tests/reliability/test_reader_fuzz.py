"""Fuzz tests of every file reader: broken input raises an error naming the file, never garbage.

Each reader gets a small valid file written by its own writer, then (a) the file truncated at a
spread of offsets, (b) seeded random bytes of several lengths (alone and behind the valid
file's first bytes, so that header parsers get past the magic number), (c) format-level
mutations written with numpy / scipy / h5py: float, NaN, infinite and negative timestamps,
coordinates beyond the sensor (including values that would wrap around int16), wrong shapes,
missing keys.  Every case must raise an exception whose message contains the file name, or --
only where the mutation leaves a valid file -- return events that pass :func:`validate`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io

from event_lightning.data.loading.dsprites_npz import load_dsprites_subset, subset_grid
from event_lightning.data.loading.mnist_idx import read_idx, write_idx
from event_lightning.data.standins.dsprites import write_dsprites_npz
from event_lightning.events.core import SensorSize, make_events, validate
from event_lightning.events.formats.asl_dvs_mat import ASL_DVS_SENSOR_SIZE, read_asl_dvs_mat, write_asl_dvs_mat
from event_lightning.events.formats.dhp19_h5 import (
    DHP19_SENSOR_SIZE,
    read_dhp19_events,
    read_dhp19_labels,
    write_dhp19_events,
    write_dhp19_labels,
)
from event_lightning.events.formats.dvsgesture_npy import (
    DVSGESTURE_SENSOR_SIZE,
    read_dvsgesture_npy,
    write_dvsgesture_npy,
)
from event_lightning.events.formats.nmnist import NMNIST_SENSOR_SIZE, read_nmnist_bin, write_nmnist_bin
from event_lightning.events.formats.spikingjelly_npz import read_spikingjelly_npz, write_spikingjelly_npz
from event_lightning.events.formats.tonic_npy import POKERDVS_SENSOR_SIZE, read_tonic_npy, write_tonic_npy

N_EVENTS = 40
RANDOM_SEEDS = (0, 1, 2)
RANDOM_LENGTHS = (1, 5, 7, 64, 300, 2048)
DSPRITES_KEPT = [np.array([0]), np.array([0]), np.array([0, 1]), np.array([0]), np.array([0, 1])]


def _events(sensor: SensorSize, seed: int = 0, n: int = N_EVENTS, t_step: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, n * t_step, n))
    return make_events(rng.integers(0, sensor.width, n), rng.integers(0, sensor.height, n), t, rng.integers(0, 2, n))


def _expect_named_error_or_valid(
    read: Callable[[Path], object], path: Path, check: Callable[[object], None] | None
) -> str:
    """Read ``path``; an exception must name the file, a returned value must pass ``check``.

    Returns ``"error"`` or ``"valid"`` so that callers can assert which outcome a case needs.
    """
    try:
        result = read(path)
    except Exception as error:  # noqa: BLE001 - any exception type is allowed, its message is what is checked
        assert path.name in str(error), f"{type(error).__name__} does not name {path.name}: {error}"
        return "error"
    if check is None:
        raise AssertionError(f"{path.name}: the reader returned {type(result).__name__} for a broken file")
    check(result)
    return "valid"


def _truncation_offsets(size: int) -> list[int]:
    """0, offsets inside a typical header, quarter points, and the last bytes."""
    offsets = {0, 1, 2, 3, 4, 5, 8, 11, 16, 24, 32, 64, 128, size // 4, size // 2, 3 * size // 4, size - 2, size - 1}
    return sorted(o for o in offsets if 0 <= o < size)


def _random_payloads(prefix: bytes) -> list[bytes]:
    """Seeded random bytes, alone and behind ``prefix`` (the first bytes of a valid file)."""
    payloads = []
    for seed in RANDOM_SEEDS:
        rng = np.random.default_rng(seed)
        for length in RANDOM_LENGTHS:
            noise = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
            payloads += [noise, prefix + noise]
    return payloads


def _fuzz_bytes(valid: Path, read: Callable[[Path], object], check: Callable[[object], None] | None = None) -> int:
    """Truncations and random overwrites of ``valid`` (in sibling files); returns the number of inputs."""
    data = valid.read_bytes()
    count = 0
    for offset in _truncation_offsets(len(data)):
        path = valid.with_name(f"trunc{offset}_{valid.name}")
        path.write_bytes(data[:offset])
        _expect_named_error_or_valid(read, path, check)
        count += 1
    for i, payload in enumerate(_random_payloads(data[:16])):
        path = valid.with_name(f"random{i}_{valid.name}")
        path.write_bytes(payload)
        _expect_named_error_or_valid(read, path, check)
        count += 1
    return count


def _must_raise(read: Callable[[Path], object], path: Path) -> None:
    assert _expect_named_error_or_valid(read, path, None) == "error"


# --------------------------------------------------------------------------------------------- N-MNIST


def test_nmnist_bin_fuzz(tmp_path: Path) -> None:
    events = _events(NMNIST_SENSOR_SIZE)
    valid = tmp_path / "sample.bin"
    write_nmnist_bin(valid, events)

    def check(result: object) -> None:
        validate(result, NMNIST_SENSOR_SIZE)

    count = _fuzz_bytes(valid, read_nmnist_bin, check)
    data = valid.read_bytes()
    # A cut exactly at a record boundary is a valid, shorter recording: it must be that prefix.
    for n in (1, N_EVENTS // 2, N_EVENTS - 1):
        path = tmp_path / f"boundary{n}.bin"
        path.write_bytes(data[: 5 * n])
        np.testing.assert_array_equal(read_nmnist_bin(path), events[:n])
        count += 1
    # Coordinates beyond the 34x34 sensor, as raw bytes.
    for field, value in ((0, 34), (0, 255), (1, 34), (1, 200)):
        record = bytearray(data)
        record[5 * 3 + field] = value
        path = tmp_path / f"beyond{field}_{value}.bin"
        path.write_bytes(bytes(record))
        _must_raise(read_nmnist_bin, path)
        count += 1
    print(f"N-MNIST .bin: {count} fuzzed inputs")


# ------------------------------------------------------------------------------------ tonic POKER-DVS npy


def test_tonic_npy_fuzz(tmp_path: Path) -> None:
    events = _events(POKERDVS_SENSOR_SIZE)
    valid = tmp_path / "sample.npy"
    write_tonic_npy(valid, events)

    def check(result: object) -> None:
        validate(result, POKERDVS_SENSOR_SIZE)

    count = _fuzz_bytes(valid, read_tonic_npy, check)
    good = np.load(valid)
    mutations = {
        "float_t": good.astype(np.float64),
        "nan_t": np.where(np.arange(4) == 0, np.nan, good.astype(np.float64)),
        "negative_t": good - np.array([10**9, 0, 0, 0]),
        "x_beyond": good + np.array([0, 35, 0, 0]),
        "x_wraps_int16": good + np.array([0, 65536, 0, 0]),
        "y_negative": good - np.array([0, 0, 100, 0]),
        "p_beyond": good + np.array([0, 0, 0, 2]),
        "one_d": good[:, 0],
        "three_columns": good[:, :3],
        "empty": good[:0],
        "bool": good.astype(bool),
        "string": good.astype(str),
        "structured": np.zeros(3, dtype=[("t", "<i8"), ("x", "<i2")]),
    }
    for name, array in mutations.items():
        path = tmp_path / f"{name}.npy"
        np.save(path, array)
        _must_raise(read_tonic_npy, path)
        count += 1
    # Without a sensor size only the contract is checked, and still checked.
    for name in ("negative_t", "y_negative", "p_beyond"):
        _must_raise(lambda path: read_tonic_npy(path, sensor_size=None), tmp_path / f"{name}.npy")
        count += 1
    print(f"tonic .npy: {count} fuzzed inputs")


# ---------------------------------------------------------------------------------- spikingjelly npz


@pytest.mark.parametrize("compressed", [True, False])
def test_spikingjelly_npz_fuzz(tmp_path: Path, compressed: bool) -> None:
    sensor = SensorSize(48, 32, 2)
    events = _events(sensor)
    valid = tmp_path / "sample.npz"
    write_spikingjelly_npz(valid, events, compressed=compressed)

    def read(path: Path) -> np.ndarray:
        return read_spikingjelly_npz(path, sensor_size=sensor)

    def check(result: object) -> None:
        validate(result, sensor)

    count = _fuzz_bytes(valid, read, check)
    good = {k: events[k].astype(np.int64) for k in ("t", "x", "y", "p")}
    n = len(events)
    mutations = {
        "nan_t": {**good, "t": np.where(np.arange(n) == 5, np.nan, good["t"].astype(np.float64))},
        "inf_t": {**good, "t": np.full(n, np.inf)},
        "negative_t": {**good, "t": good["t"] - 10**6},
        "string_t": {**good, "t": good["t"].astype(str)},
        "x_beyond": {**good, "x": good["x"] + sensor.width},
        "x_wraps_int16": {**good, "x": good["x"] + 65536},
        "nan_x": {**good, "x": np.where(np.arange(n) == 0, np.nan, good["x"].astype(np.float64))},
        "y_negative": {**good, "y": good["y"] - 40},
        "p_wraps_int8": {**good, "p": good["p"] + 256},
        "p_beyond": {**good, "p": good["p"] + 2},
        "missing_p": {k: v for k, v in good.items() if k != "p"},
        "short_x": {**good, "x": good["x"][:-1]},
        "empty": {k: v[:0] for k, v in good.items()},
    }
    for name, arrays in mutations.items():
        path = tmp_path / f"{name}.npz"
        (np.savez_compressed if compressed else np.savez)(path, **arrays)
        _must_raise(read, path)
        count += 1
    # The default (no sensor size) still enforces the contract: x, y >= 0, p in {0, 1}, t >= 0.
    for name in ("negative_t", "y_negative", "p_beyond", "p_wraps_int8", "x_wraps_int16", "nan_x"):
        _must_raise(read_spikingjelly_npz, tmp_path / f"{name}.npz")
        count += 1
    print(f"spikingjelly .npz (compressed={compressed}): {count} fuzzed inputs")


# ------------------------------------------------------------------------------------------- ASL-DVS


def test_asl_dvs_mat_fuzz(tmp_path: Path) -> None:
    events = _events(ASL_DVS_SENSOR_SIZE)
    valid = tmp_path / "sample.mat"
    write_asl_dvs_mat(valid, events)

    def check(result: object) -> None:
        validate(result, ASL_DVS_SENSOR_SIZE)

    count = _fuzz_bytes(valid, read_asl_dvs_mat, check)
    good = {
        "ts": events["t"].astype(np.float64)[:, None],
        "x": events["x"].astype(np.int64)[:, None],
        "y": events["y"].astype(np.int64)[:, None],
        "pol": events["p"].astype(np.int64)[:, None],
    }
    mutations = {
        "nan_ts": {**good, "ts": np.where(np.arange(len(events))[:, None] == 3, np.nan, good["ts"])},
        "inf_ts": {**good, "ts": np.full_like(good["ts"], np.inf)},
        "negative_ts": {**good, "ts": good["ts"] - 1e9},
        "string_ts": {**good, "ts": np.array(["abc"])},
        "x_beyond": {**good, "x": good["x"] + 240},
        "x_wraps_int16": {**good, "x": good["x"] + 65536},
        "y_beyond": {**good, "y": good["y"] + 180},
        "nan_x": {**good, "x": np.where(np.arange(len(events))[:, None] == 0, np.nan, good["x"] * 1.0)},
        "pol_beyond": {**good, "pol": good["pol"] + 2},
        "pol_wraps_int8": {**good, "pol": good["pol"] + 256},
        "missing_pol": {k: v for k, v in good.items() if k != "pol"},
        "short_y": {**good, "y": good["y"][:-2]},
        "empty": {k: v[:0] for k, v in good.items()},
    }
    for name, arrays in mutations.items():
        path = tmp_path / f"{name}.mat"
        scipy.io.savemat(path, arrays)
        _must_raise(read_asl_dvs_mat, path)
        count += 1
    for name in ("negative_ts", "pol_beyond", "x_wraps_int16"):
        _must_raise(lambda path: read_asl_dvs_mat(path, sensor_size=None), tmp_path / f"{name}.mat")
        count += 1
    # With a flip, coordinates beyond the sensor turn negative: still an error, not a mirrored pixel.
    _must_raise(lambda path: read_asl_dvs_mat(path, flip="xy", sensor_size=None), tmp_path / "x_beyond.mat")
    count += 1
    print(f"ASL-DVS .mat: {count} fuzzed inputs")


# ---------------------------------------------------------------------------------------- DVSGesture


def test_dvsgesture_npy_fuzz(tmp_path: Path) -> None:
    events = _events(DVSGESTURE_SENSOR_SIZE)
    valid = tmp_path / "3.npy"
    write_dvsgesture_npy(valid, events)

    def check(result: object) -> None:
        validate(result, DVSGESTURE_SENSOR_SIZE)

    count = _fuzz_bytes(valid, read_dvsgesture_npy, check)
    good = np.load(valid)
    n = len(good)
    mutations = {
        "nan_t": np.where((np.arange(n)[:, None] == 2) & (np.arange(4) == 3), np.nan, good * 1.0),
        "fractional_t": good + np.array([0, 0, 0, 0.5]),
        "negative_t": good - np.array([0, 0, 0, 10**6]),
        "t_overflows_us": good + np.array([0, 0, 0, 2**62]),
        "x_beyond": good + np.array([128, 0, 0, 0]),
        "x_wraps_int16": good + np.array([65536, 0, 0, 0]),
        "y_negative": good - np.array([0, 200, 0, 0]),
        "p_beyond": good + np.array([0, 0, 2, 0]),
        "unsorted": good[::-1],
        "one_d": good[:, 0],
        "five_columns": np.concatenate([good, good[:, :1]], 1),
        "empty": good[:0],
        "string": good.astype(str),
    }
    for name, array in mutations.items():
        path = tmp_path / f"{name}.npy"
        np.save(path, array)
        _must_raise(read_dvsgesture_npy, path)
        count += 1
    print(f"DVSGesture .npy: {count} fuzzed inputs")


# --------------------------------------------------------------------------------------------- DHP19


def _dhp19_fields(events: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "x": events["x"].astype(np.int16) + 1,
        "y": events["y"].astype(np.int16) + 1,
        "p": events["p"].astype(np.int8),
        "t": events["t"].astype(np.int64),
    }


def _write_dhp19_raw(path: Path, fields: dict[str, np.ndarray], table: np.ndarray | None) -> None:
    with h5py.File(path, "w") as f:
        group = f.create_group("cam2_events")
        for name, values in fields.items():
            group.create_dataset(name, data=values)
        if table is not None:
            f.create_dataset("cam2_ms_to_idx", data=table)


def test_dhp19_events_fuzz(tmp_path: Path) -> None:
    events = _events(DHP19_SENSOR_SIZE)
    valid = tmp_path / "S1_session1_mov1_events.h5"
    write_dhp19_events(valid, {2: events})

    def read(path: Path) -> tuple[np.ndarray, np.ndarray]:
        return read_dhp19_events(path, 2)

    def check(result: object) -> None:
        validate(result[0], DHP19_SENSOR_SIZE)

    count = _fuzz_bytes(valid, read, check)
    good = _dhp19_fields(events)
    table = np.searchsorted(events["t"], np.arange(N_EVENTS + 1) * 1000).astype(np.int64)
    n = len(events)
    mutations = {
        "nan_t": ({**good, "t": np.where(np.arange(n) == 4, np.nan, good["t"] * 1.0)}, table),
        "negative_t": ({**good, "t": good["t"] - 10**6}, table),
        "unsorted_t": ({**good, "t": good["t"][::-1]}, table),
        "x_beyond": ({**good, "x": good["x"] + 346}, table),
        "x_zero": ({**good, "x": good["x"] * 0}, table),
        "x_wraps_int16": ({**good, "x": good["x"].astype(np.int64) + 65536}, table),
        "p_beyond": ({**good, "p": good["p"] + 2}, table),
        "p_wraps_int8": ({**good, "p": good["p"].astype(np.int64) + 256}, table),
        "short_y": ({**good, "y": good["y"][:-1]}, table),
        "missing_t": ({k: v for k, v in good.items() if k != "t"}, table),
        "missing_table": (good, None),
        "table_past_end": (good, table + n),
        "table_decreasing": (good, table[::-1]),
    }
    for name, (fields, mutated_table) in mutations.items():
        path = tmp_path / f"{name}_events.h5"
        _write_dhp19_raw(path, fields, mutated_table)
        _must_raise(read, path)
        count += 1
    print(f"DHP19 events .h5: {count} fuzzed inputs")


def test_dhp19_labels_fuzz(tmp_path: Path) -> None:
    poses = np.random.default_rng(0).normal(size=(6, 3, 13))
    valid = tmp_path / "S1_session1_mov1_label.h5"
    write_dhp19_labels(valid, poses, np.arange(1, 7) * 10_000)

    def check(result: object) -> None:
        read_poses, timestamps = result
        assert read_poses.shape[1:] == (3, 13) and timestamps.shape == read_poses.shape[:1]

    count = _fuzz_bytes(valid, read_dhp19_labels, check)
    mutations = {
        "wrong_joints": {"XYZ/3d_poses": poses[:, :, :12], "XYZ/timestamps": np.arange(6)},
        "short_timestamps": {"XYZ/3d_poses": poses, "XYZ/timestamps": np.arange(5)},
        "missing_timestamps": {"XYZ/3d_poses": poses},
        "string_poses": {"XYZ/3d_poses": np.array([b"abc"]), "XYZ/timestamps": np.arange(1)},
    }
    for name, datasets in mutations.items():
        path = tmp_path / f"{name}_label.h5"
        with h5py.File(path, "w") as f:
            for key, data in datasets.items():
                f.create_dataset(key, data=data)
        _must_raise(read_dhp19_labels, path)
        count += 1
    print(f"DHP19 labels .h5: {count} fuzzed inputs")


# ------------------------------------------------------------------------------------------ MNIST IDX


def test_mnist_idx_fuzz(tmp_path: Path) -> None:
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    valid = tmp_path / "train-images-idx3-ubyte"
    write_idx(valid, images)

    def read(path: Path) -> np.ndarray:
        return read_idx(path, expected_ndim=3)

    count = _fuzz_bytes(valid, read)
    data = valid.read_bytes()
    header = bytearray(data[:16])
    mutations = {
        "bad_type": bytes([0, 0, 0x07, 3]) + data[4:],
        "bad_zero": bytes([1, 0, 0x08, 3]) + data[4:],
        "wrong_ndim": bytes([0, 0, 0x08, 2]) + data[4:],
        "huge_shape": bytes(header[:4]) + np.array([2**32 - 1] * 3, ">u4").tobytes() + data[16:],
        "float_type": bytes([0, 0, 0x0D, 3]) + data[4:],
        "trailing": data + b"\x00",
    }
    for name, payload in mutations.items():
        path = tmp_path / f"{name}-idx3-ubyte"
        path.write_bytes(payload)
        _must_raise(read, path)
        count += 1
    gz_path = tmp_path / "broken-idx3-ubyte.gz"
    gz_path.write_bytes(b"\x1f\x8b" + data[:40])
    _must_raise(read, gz_path)
    count += 1
    print(f"MNIST IDX: {count} fuzzed inputs")


# ------------------------------------------------------------------------------------------ dSprites


def test_dsprites_npz_fuzz(tmp_path: Path) -> None:
    classes = subset_grid(DSPRITES_KEPT)
    valid = tmp_path / "dsprites.npz"
    write_dsprites_npz(valid, classes)
    expected = load_dsprites_subset(valid, DSPRITES_KEPT)

    def read(path: Path) -> np.ndarray:
        return load_dsprites_subset(path, DSPRITES_KEPT)

    count = _fuzz_bytes(valid, read)
    with np.load(valid) as archive:
        images, good_classes = archive["imgs"], archive["latents_classes"]
    mutations = {
        "missing_imgs": {"latents_classes": good_classes},
        "missing_classes": {"imgs": images},
        "float_classes": {"imgs": images, "latents_classes": good_classes * 1.0},
        "nan_classes": {"imgs": images, "latents_classes": np.full(good_classes.shape, np.nan)},
        "negative_classes": {"imgs": images, "latents_classes": good_classes - 1},
        "classes_beyond": {"imgs": images, "latents_classes": good_classes + 40},
        "non_binary": {"imgs": images * 3, "latents_classes": good_classes},
        "wrong_image_size": {"imgs": images[:, :32], "latents_classes": good_classes},
        "short_classes": {"imgs": images, "latents_classes": good_classes[:-1]},
        "subset_missing": {"imgs": images[:1], "latents_classes": good_classes[:1]},
    }
    for name, arrays in mutations.items():
        path = tmp_path / f"{name}.npz"
        np.savez_compressed(path, **arrays)
        _must_raise(read, path)
        count += 1
    np.testing.assert_array_equal(read(valid), expected)
    print(f"dSprites .npz: {count} fuzzed inputs")
