"""Fuzz tests of every file reader: a broken or hostile file raises the reader's format error naming
the file, in bounded memory, never garbage and never another exception.

Each reader gets a small valid file written by its own writer, then (a) the file truncated at a
spread of offsets, (b) seeded random bytes of several lengths (alone and behind the valid file's
first bytes, so that header parsers get past the magic number), (c) format-level mutations written
with numpy / scipy / h5py / zipfile: float, NaN, infinite, fractional, complex and negative values,
coordinates beyond the sensor (including values that would wrap around int16), wrong shapes,
missing keys, and (d) header fields set to huge values -- shapes, dimensions, element counts,
packet and member sizes that the file cannot hold -- and small compressed files that inflate to
128 MiB ("bombs"). Every read runs under the ``bounded_read`` fixture (``conftest.py``): its
traced allocations stay within 64 MiB + 10x the file size, and it either raises the reader's
documented error (:class:`EventFormatError`, ``IDXFormatError``, ``DSpritesFormatError``) naming
the file, or -- only where the mutation leaves a valid file -- returns what passes ``check``.
"""

from __future__ import annotations

import gzip
import io
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

import h5py
import lz4.frame
import numpy as np
import pytest
import scipy.io
import zstandard

from event_lightning.data.loading.dsprites_npz import DSpritesFormatError, load_dsprites_subset, subset_grid
from event_lightning.data.loading.mnist_idx import IDXFormatError, read_idx, write_idx
from event_lightning.data.standins.dsprites import write_dsprites_npz
from event_lightning.events.core import EventFormatError, SensorSize, make_events, validate
from event_lightning.events.formats.aedat4 import Aedat4Stream, encode_aedat4_header, read_aedat4, write_aedat4
from event_lightning.events.formats.asl_dvs_mat import ASL_DVS_SENSOR_SIZE, read_asl_dvs_mat, write_asl_dvs_mat
from event_lightning.events.formats.dhp19_h5 import (
    DHP19_SENSOR_SIZE,
    read_dhp19_events,
    read_dhp19_labels,
    read_projection_matrices,
    write_dhp19_events,
    write_dhp19_labels,
    write_projection_matrices,
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
BOMB_BYTES = 128 << 20
"""What a bomb inflates to: more than the cap allows for its few hundred KB."""
DSPRITES_KEPT = [np.array([0]), np.array([0]), np.array([0, 1]), np.array([0]), np.array([0, 1])]
HUGE_SHAPES = ((10**9, 4), (2**40, 4), (4, 10**12), (10**6, 10**6))


def _events(sensor: SensorSize, seed: int = 0, n: int = N_EVENTS, t_step: int = 1000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.sort(rng.integers(0, n * t_step, n))
    return make_events(rng.integers(0, sensor.width, n), rng.integers(0, sensor.height, n), t, rng.integers(0, 2, n))


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


class _Cases:
    """One reader's fuzzed inputs, each read through ``bounded_read``; counts them."""

    def __init__(
        self,
        bounded_read: Callable,
        read: Callable[[Path], object],
        check: Callable[[object], None] | None = None,
        error: type[Exception] = EventFormatError,
    ) -> None:
        self.bounded_read, self.read, self.check, self.error, self.count = bounded_read, read, check, error, 0

    def run(self, path: Path) -> str:
        """Read ``path``: the reader's error naming it, or a result that must pass ``check``."""
        self.count += 1
        outcome, result = self.bounded_read(self.read, path, self.error)
        if outcome == "valid":
            assert self.check is not None, f"{path.name}: the reader returned {type(result).__name__} for a broken file"
            self.check(result)
        return outcome

    def must_raise(self, path: Path) -> None:
        assert self.run(path) == "error", f"{path.name}: read without an error"

    def must_raise_all(self, paths: Iterable[Path]) -> None:
        for path in paths:
            self.must_raise(path)

    def fuzz_bytes(self, valid: Path) -> None:
        """Truncations and random overwrites of ``valid`` (in sibling files)."""
        data = valid.read_bytes()
        for offset in _truncation_offsets(len(data)):
            path = valid.with_name(f"trunc{offset}_{valid.name}")
            path.write_bytes(data[:offset])
            self.run(path)
        for i, payload in enumerate(_random_payloads(data[:16])):
            path = valid.with_name(f"random{i}_{valid.name}")
            path.write_bytes(payload)
            self.run(path)


# ------------------------------------------------------------------------------- hostile file builders


def _npy_bytes(shape: tuple[int, ...], descr: str = "<i8", data: bytes = b"\0" * 64, version: int = 1) -> bytes:
    """A ``.npy`` whose header declares ``shape`` of ``descr``, followed by ``data``."""
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header) if version == 1 else np.lib.format.write_array_header_2_0(
        buffer, header
    )
    return buffer.getvalue() + data


def _huge_npy(folder: Path, stem: str, descr: str = "<i8") -> list[Path]:
    """``.npy`` files declaring more than they hold, object arrays and oversized header lengths."""
    paths = []
    for i, shape in enumerate(HUGE_SHAPES):
        path = folder / f"{stem}_huge{i}.npy"
        path.write_bytes(_npy_bytes(shape, descr, version=1 + i % 2))
        paths.append(path)
    for name, payload in {
        "object": _npy_bytes((3, 4), "|O"),
        "negative_shape": _npy_bytes((-1, 4)),
        "header_len_huge": b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**31) + b"{}",
    }.items():
        path = folder / f"{stem}_{name}.npy"
        path.write_bytes(payload)
        paths.append(path)
    return paths


def _zip_members(path: Path, members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(f"{name}.npy", data)
    return path


def _npz_bomb(path: Path, key: str, others: dict[str, np.ndarray], dtype: str = "<i8") -> Path:
    """An ``.npz`` whose member ``key`` is a valid array of :data:`BOMB_BYTES` zeros, deflated."""
    itemsize = np.dtype(dtype).itemsize
    chunk = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, array in others.items():
            buffer = io.BytesIO()
            np.save(buffer, array)
            archive.writestr(f"{name}.npy", buffer.getvalue())
        with archive.open(f"{key}.npy", "w", force_zip64=True) as member:
            member.write(_npy_bytes((BOMB_BYTES // itemsize,), dtype, data=b""))
            for _ in range(BOMB_BYTES // len(chunk)):
                member.write(chunk)
    return path


def _with_member_size(source: Path, path: Path, key: str, size: int) -> Path:
    """A copy of ``source`` whose central directory says member ``key`` inflates to ``size`` bytes."""
    data = bytearray(source.read_bytes())
    name = f"{key}.npy".encode()
    position = data.index(b"PK\x01\x02")
    while True:
        name_length = struct.unpack_from("<H", data, position + 28)[0]
        if data[position + 46 : position + 46 + name_length] == name:
            struct.pack_into("<I", data, position + 24, size)
            break
        extra, comment = struct.unpack_from("<HH", data, position + 30)
        position += 46 + name_length + extra + comment
    path.write_bytes(bytes(data))
    return path


_MAT_HEADER = b"MATLAB 5.0 MAT-file".ljust(116, b" ") + bytes(8) + struct.pack("<H", 0x0100) + b"IM"
_MI_DOUBLE, _MI_UINT8, _MX_DOUBLE, _MX_UINT8 = 9, 2, 6, 9


def _mat_tag(data_type: int, nbytes: int) -> bytes:
    return struct.pack("<II", data_type, nbytes)


def _pad8(data: bytes) -> bytes:
    return data + bytes(-len(data) % 8)


def _mat_matrix_head(name: str, dims: tuple[int, ...], mclass: int, data_type: int, data_bytes: int) -> bytes:
    """Array flags, dimensions, name and the data tag of one variable (the data follows)."""
    flags = _mat_tag(6, 8) + struct.pack("<II", mclass, 0)
    dimensions = _pad8(_mat_tag(5, 4 * len(dims)) + struct.pack(f"<{len(dims)}i", *dims))
    return flags + dimensions + _pad8(_mat_tag(1, len(name)) + name.encode()) + _mat_tag(data_type, data_bytes)


def _mat_variable(name: str, values: np.ndarray, dims: tuple[int, ...] | None = None, data_bytes: int | None = None):
    """An uncompressed miMATRIX element; ``dims`` / ``data_bytes`` override what the header declares."""
    data_type, mclass = (_MI_UINT8, _MX_UINT8) if values.dtype == np.uint8 else (_MI_DOUBLE, _MX_DOUBLE)
    raw = values.tobytes()
    dims = dims or (len(values), 1)
    content = _mat_matrix_head(name, dims, mclass, data_type, len(raw) if data_bytes is None else data_bytes)
    content = _pad8(content + raw)
    return _mat_tag(14, len(content)) + content


def _mat_bomb(name: str) -> bytes:
    """A compressed ``name`` of :data:`BOMB_BYTES` zero doubles, inflated nowhere while writing."""
    n = BOMB_BYTES // 8
    head = _mat_matrix_head(name, (n, 1), _MX_DOUBLE, _MI_DOUBLE, BOMB_BYTES)
    compressor = zlib.compressobj()
    body = compressor.compress(_mat_tag(14, len(head) + BOMB_BYTES) + head)
    chunk = bytes(1 << 20)
    body += b"".join(compressor.compress(chunk) for _ in range(BOMB_BYTES // len(chunk))) + compressor.flush()
    return _mat_tag(15, len(body)) + body


def _asl_columns(events: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "ts": events["t"].astype(np.float64),
        "x": events["x"].astype(np.uint8),
        "y": events["y"].astype(np.uint8),
        "pol": events["p"].astype(np.uint8),
    }


def _zstd_bomb(prefix: bytes, with_size: bool) -> bytes:
    compressor = zstandard.ZstdCompressor(write_content_size=with_size)
    chunk = bytes(1 << 20)
    writer = compressor.compressobj(size=len(prefix) + BOMB_BYTES if with_size else -1)
    out = writer.compress(prefix) + b"".join(writer.compress(chunk) for _ in range(BOMB_BYTES // len(chunk)))
    return out + writer.flush()


def _lz4_bomb(prefix: bytes, with_size: bool) -> bytes:
    compressor = lz4.frame.LZ4FrameCompressor(content_checksum=True)
    out = compressor.begin(source_size=len(prefix) + BOMB_BYTES if with_size else 0) + compressor.compress(prefix)
    chunk = bytes(1 << 20)
    out += b"".join(compressor.compress(chunk) for _ in range(BOMB_BYTES // len(chunk)))
    return out + compressor.flush()


def _evts_packet_prefix(count: int) -> bytes:
    """The size-prefixed ``EVTS`` FlatBuffer up to its event vector of ``count`` 16-byte events."""
    body = struct.pack("<I4s3H2xiII", 16, b"EVTS", 6, 8, 4, 16 - 8, 24 - 20, count)
    return struct.pack("<I", len(body) + 16 * count) + body


# --------------------------------------------------------------------------------------------- N-MNIST


def test_nmnist_bin_fuzz(tmp_path: Path, bounded_read) -> None:
    events = _events(NMNIST_SENSOR_SIZE)
    valid = tmp_path / "sample.bin"
    write_nmnist_bin(valid, events)
    cases = _Cases(bounded_read, read_nmnist_bin, lambda result: validate(result, NMNIST_SENSOR_SIZE))
    cases.fuzz_bytes(valid)
    data = valid.read_bytes()
    # A cut exactly at a record boundary is a valid, shorter recording: it must be that prefix.
    for n in (1, N_EVENTS // 2, N_EVENTS - 1):
        path = tmp_path / f"boundary{n}.bin"
        path.write_bytes(data[: 5 * n])
        np.testing.assert_array_equal(read_nmnist_bin(path), events[:n])
    # Coordinates beyond the 34x34 sensor, as raw bytes.
    for field, value in ((0, 34), (0, 255), (1, 34), (1, 200)):
        record = bytearray(data)
        record[5 * 3 + field] = value
        path = tmp_path / f"beyond{field}_{value}.bin"
        path.write_bytes(bytes(record))
        cases.must_raise(path)
    # Only timestamp-overflow markers (y = 240): no event at all.
    markers = np.zeros((5000, 5), np.uint8)
    markers[:, 1] = 240
    path = tmp_path / "markers_only.bin"
    path.write_bytes(markers.tobytes())
    cases.must_raise(path)
    print(f"N-MNIST .bin: {cases.count} fuzzed inputs")


# ------------------------------------------------------------------------------------ tonic POKER-DVS npy


def test_tonic_npy_fuzz(tmp_path: Path, bounded_read) -> None:
    events = _events(POKERDVS_SENSOR_SIZE)
    valid = tmp_path / "sample.npy"
    write_tonic_npy(valid, events)
    cases = _Cases(bounded_read, read_tonic_npy, lambda result: validate(result, POKERDVS_SENSOR_SIZE))
    cases.fuzz_bytes(valid)
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
        "complex": good.astype(np.complex128),
        "structured": np.zeros(3, dtype=[("t", "<i8"), ("x", "<i2")]),
    }
    for name, array in mutations.items():
        path = tmp_path / f"{name}.npy"
        np.save(path, array)
        cases.must_raise(path)
    cases.must_raise_all(_huge_npy(tmp_path, "tonic"))
    # Without a sensor size only the contract is checked, and still checked.
    unbounded = _Cases(bounded_read, lambda path: read_tonic_npy(path, sensor_size=None))
    unbounded.must_raise_all(tmp_path / f"{name}.npy" for name in ("negative_t", "y_negative", "p_beyond"))
    print(f"tonic .npy: {cases.count + unbounded.count} fuzzed inputs")


# ---------------------------------------------------------------------------------- spikingjelly npz


@pytest.mark.parametrize("compressed", [True, False])
def test_spikingjelly_npz_fuzz(tmp_path: Path, bounded_read, compressed: bool) -> None:
    sensor = SensorSize(48, 32, 2)
    events = _events(sensor)
    valid = tmp_path / "sample.npz"
    write_spikingjelly_npz(valid, events, compressed=compressed)

    def read(path: Path) -> np.ndarray:
        return read_spikingjelly_npz(path, sensor_size=sensor)

    cases = _Cases(bounded_read, read, lambda result: validate(result, sensor))
    cases.fuzz_bytes(valid)
    good = {k: events[k].astype(np.int64) for k in ("t", "x", "y", "p")}
    n = len(events)
    mutations = {
        "nan_t": {**good, "t": np.where(np.arange(n) == 5, np.nan, good["t"].astype(np.float64))},
        "inf_t": {**good, "t": np.full(n, np.inf)},
        "negative_t": {**good, "t": good["t"] - 10**6},
        "string_t": {**good, "t": good["t"].astype(str)},
        "complex_t": {**good, "t": good["t"] + 1j},
        "t_beyond_int64": {**good, "t": good["t"] * 1e30},
        "x_beyond": {**good, "x": good["x"] + sensor.width},
        "x_wraps_int16": {**good, "x": good["x"] + 65536},
        "nan_x": {**good, "x": np.where(np.arange(n) == 0, np.nan, good["x"].astype(np.float64))},
        "fractional_x": {**good, "x": good["x"] + 0.7},
        "fractional_p": {**good, "p": good["p"] * 0.5},
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
        cases.must_raise(path)
    # The default (no sensor size) still enforces the contract: x, y >= 0, p in {0, 1}, t >= 0.
    unbounded = _Cases(bounded_read, read_spikingjelly_npz)
    names = ("negative_t", "y_negative", "p_beyond", "p_wraps_int8", "x_wraps_int16", "nan_x", "fractional_x")
    unbounded.must_raise_all(tmp_path / f"{name}.npz" for name in names)
    # Headers declaring more than the archive holds, members the archive says are huge, bzip2
    # members (inflated without a cap by zipfile), object arrays, and a deflate bomb.
    small = {k: _npy_bytes(v.shape, v.dtype.str, v.tobytes()) for k, v in good.items()}
    compression = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    hostile = [
        _zip_members(tmp_path / f"huge_header{i}.npz", {**small, "t": _npy_bytes(shape)}, compression)
        for i, shape in enumerate(HUGE_SHAPES)
    ]
    hostile += [
        _zip_members(tmp_path / "object_member.npz", {**small, "x": _npy_bytes((n,), "|O")}, compression),
        _zip_members(tmp_path / "bzip2_member.npz", small, zipfile.ZIP_BZIP2),
        _with_member_size(valid, tmp_path / "member_size_huge.npz", "t", 2**32 - 2),
        _with_member_size(valid, tmp_path / "member_size_small.npz", "x", 3),
        _npz_bomb(tmp_path / "bomb.npz", "t", {k: v[:0] for k, v in good.items() if k != "t"}),
    ]
    cases.must_raise_all(hostile)
    print(f"spikingjelly .npz (compressed={compressed}): {cases.count + unbounded.count} fuzzed inputs")


# ------------------------------------------------------------------------------------------- ASL-DVS


@pytest.mark.parametrize("compressed", [False, True])
def test_asl_dvs_mat_fuzz(tmp_path: Path, bounded_read, compressed: bool) -> None:
    events = _events(ASL_DVS_SENSOR_SIZE)
    valid = tmp_path / "sample.mat"
    if compressed:
        scipy.io.savemat(valid, {k: v[:, None] for k, v in _asl_columns(events).items()}, do_compression=True)
    else:
        write_asl_dvs_mat(valid, events)
    cases = _Cases(bounded_read, read_asl_dvs_mat, lambda result: validate(result, ASL_DVS_SENSOR_SIZE))
    cases.fuzz_bytes(valid)
    good = {
        "ts": events["t"].astype(np.float64)[:, None],
        "x": events["x"].astype(np.int64)[:, None],
        "y": events["y"].astype(np.int64)[:, None],
        "pol": events["p"].astype(np.int64)[:, None],
    }
    column = np.arange(len(events))[:, None]
    mutations = {
        "nan_ts": {**good, "ts": np.where(column == 3, np.nan, good["ts"])},
        "inf_ts": {**good, "ts": np.full_like(good["ts"], np.inf)},
        "complex_ts": {**good, "ts": good["ts"] + 2j},
        "negative_ts": {**good, "ts": good["ts"] - 1e9},
        "string_ts": {**good, "ts": np.array(["abc"])},
        "x_beyond": {**good, "x": good["x"] + 240},
        "x_wraps_int16": {**good, "x": good["x"] + 65536},
        "fractional_x": {**good, "x": good["x"] + 0.7},
        "fractional_y": {**good, "y": np.where(column == 5, 3.7, good["y"] * 1.0)},
        "y_beyond": {**good, "y": good["y"] + 180},
        "nan_x": {**good, "x": np.where(column == 0, np.nan, good["x"] * 1.0)},
        "pol_beyond": {**good, "pol": good["pol"] + 2},
        "pol_wraps_int8": {**good, "pol": good["pol"] + 256},
        "missing_pol": {k: v for k, v in good.items() if k != "pol"},
        "short_y": {**good, "y": good["y"][:-2]},
        "empty": {k: v[:0] for k, v in good.items()},
        "cell_ts": {**good, "ts": np.array([good["ts"], "a"], dtype=object)},
    }
    for name, arrays in mutations.items():
        path = tmp_path / f"{name}.mat"
        scipy.io.savemat(path, arrays, do_compression=compressed)
        cases.must_raise(path)
    unbounded = _Cases(bounded_read, lambda path: read_asl_dvs_mat(path, sensor_size=None))
    unbounded.must_raise_all(tmp_path / f"{name}.mat" for name in ("negative_ts", "pol_beyond", "x_wraps_int16"))
    # With a flip, coordinates beyond the sensor turn negative: still an error, not a mirrored pixel.
    flipped = _Cases(bounded_read, lambda path: read_asl_dvs_mat(path, flip="xy", sensor_size=None))
    flipped.must_raise(tmp_path / "x_beyond.mat")
    # Declared sizes the file cannot hold: dimensions, element and data byte counts, a bomb, and
    # the MAT versions this reader does not read (v7.3 is HDF5; v4 has no v5 header).
    columns = _asl_columns(events)
    rest = b"".join(_mat_variable(k, v) for k, v in columns.items() if k != "ts")
    hostile = {
        "huge_dims": _mat_variable("ts", columns["ts"], dims=(2**31 - 1, 2**31 - 1)),
        "dims_beyond_data": _mat_variable("ts", columns["ts"], dims=(10**9, 1)),
        "huge_data_bytes": _mat_variable("ts", columns["ts"], data_bytes=2**32 - 8),
        "huge_element": _mat_tag(14, 2**32 - 8) + _mat_variable("ts", columns["ts"])[8:],
        "bomb": _mat_bomb("ts"),
    }
    paths = []
    for name, element in hostile.items():
        path = tmp_path / f"{name}.mat"
        path.write_bytes(_MAT_HEADER + element + rest)
        paths.append(path)
    version_73 = tmp_path / "v73.mat"
    version_73.write_bytes(_MAT_HEADER[:124] + struct.pack("<H", 0x0200) + b"IM" + rest)
    version_4 = tmp_path / "v4.mat"
    version_4.write_bytes(struct.pack("<5i", 0, 40, 1, 0, 3) + b"ts\0" + columns["ts"].tobytes())
    cases.must_raise_all([*paths, version_73, version_4])
    total = cases.count + unbounded.count + flipped.count
    print(f"ASL-DVS .mat (compressed={compressed}): {total} fuzzed inputs")


# ---------------------------------------------------------------------------------------- DVSGesture


def test_dvsgesture_npy_fuzz(tmp_path: Path, bounded_read) -> None:
    events = _events(DVSGESTURE_SENSOR_SIZE)
    valid = tmp_path / "3.npy"
    write_dvsgesture_npy(valid, events)
    cases = _Cases(bounded_read, read_dvsgesture_npy, lambda result: validate(result, DVSGESTURE_SENSOR_SIZE))
    cases.fuzz_bytes(valid)
    good = np.load(valid)
    n = len(good)
    mutations = {
        "nan_t": np.where((np.arange(n)[:, None] == 2) & (np.arange(4) == 3), np.nan, good * 1.0),
        "fractional_t": good + np.array([0, 0, 0, 0.5]),
        "fractional_x": good + np.array([0.7, 0, 0, 0]),
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
        "complex": good.astype(np.complex64),
    }
    for name, array in mutations.items():
        path = tmp_path / f"{name}.npy"
        np.save(path, array)
        cases.must_raise(path)
    cases.must_raise_all(_huge_npy(tmp_path, "gesture"))
    print(f"DVSGesture .npy: {cases.count} fuzzed inputs")


# --------------------------------------------------------------------------------------------- DHP19


def _dhp19_fields(events: np.ndarray) -> dict[str, np.ndarray]:
    return {
        "x": events["x"].astype(np.int16) + 1,
        "y": events["y"].astype(np.int16) + 1,
        "p": events["p"].astype(np.int8),
        "t": events["t"].astype(np.int64),
    }


def _write_dhp19_raw(path: Path, fields: dict[str, np.ndarray | tuple], table: np.ndarray | tuple | None) -> None:
    """Camera 2's datasets; a ``(shape, dtype)`` tuple makes a chunked dataset that was never written."""

    def create(group: h5py.Group, name: str, value: np.ndarray | tuple) -> None:
        if isinstance(value, tuple):
            group.create_dataset(name, shape=value[0], dtype=value[1], chunks=(1 << 16,))
        else:
            group.create_dataset(name, data=value)

    with h5py.File(path, "w") as f:
        group = f.create_group("cam2_events")
        for name, values in fields.items():
            create(group, name, values)
        if table is not None:
            create(f, "cam2_ms_to_idx", table)


def test_dhp19_events_fuzz(tmp_path: Path, bounded_read) -> None:
    events = _events(DHP19_SENSOR_SIZE)
    valid = tmp_path / "S1_session1_mov1_events.h5"
    write_dhp19_events(valid, {2: events})
    cases = _Cases(bounded_read, lambda path: read_dhp19_events(path, 2), lambda r: validate(r[0], DHP19_SENSOR_SIZE))
    cases.fuzz_bytes(valid)
    good = _dhp19_fields(events)
    table = np.searchsorted(events["t"], np.arange(N_EVENTS + 1) * 1000).astype(np.int64)
    n = len(events)
    unwritten = {name: ((3 * 10**9,), values.dtype) for name, values in good.items()}
    mutations = {
        "nan_t": ({**good, "t": np.where(np.arange(n) == 4, np.nan, good["t"] * 1.0)}, table),
        "negative_t": ({**good, "t": good["t"] - 10**6}, table),
        "unsorted_t": ({**good, "t": good["t"][::-1]}, table),
        "x_beyond": ({**good, "x": good["x"] + 346}, table),
        "x_zero": ({**good, "x": good["x"] * 0}, table),
        "x_wraps_int16": ({**good, "x": good["x"].astype(np.int64) + 65536}, table),
        "x_fractional": ({**good, "x": good["x"] + 0.5}, table),
        "x_scalar": ({**good, "x": np.int16(5)}, table),
        "t_two_d": ({**good, "t": good["t"][:, None]}, table),
        "x_strings": ({**good, "x": good["x"].astype("S4")}, table),
        "p_beyond": ({**good, "p": good["p"] + 2}, table),
        "p_wraps_int8": ({**good, "p": good["p"].astype(np.int64) + 256}, table),
        "short_y": ({**good, "y": good["y"][:-1]}, table),
        "missing_t": ({k: v for k, v in good.items() if k != "t"}, table),
        "missing_table": (good, None),
        "table_past_end": (good, table + n),
        "table_decreasing": (good, table[::-1]),
        "table_scalar": (good, np.int64(0)),
        "table_huge": (good, ((10**10,), np.int64)),
        "fields_huge": (unwritten, table),
        "t_huge": ({**good, "t": ((3 * 10**9,), np.int64)}, table),
    }
    for name, (fields, mutated_table) in mutations.items():
        path = tmp_path / f"{name}_events.h5"
        _write_dhp19_raw(path, fields, mutated_table)
        cases.must_raise(path)
    # Data stored outside the file (an external raw file) is refused, not followed.
    outside = tmp_path / "outside.bin"
    outside.write_bytes(good["x"].tobytes())
    path = tmp_path / "external_events.h5"
    _write_dhp19_raw(path, {k: v for k, v in good.items() if k != "x"}, table)
    with h5py.File(path, "a") as f:
        f["cam2_events"].create_dataset("x", shape=(n,), dtype=np.int16, external=[(str(outside), 0, 2 * n)])
    cases.must_raise(path)
    print(f"DHP19 events .h5: {cases.count} fuzzed inputs")


def test_dhp19_labels_fuzz(tmp_path: Path, bounded_read) -> None:
    poses = np.random.default_rng(0).normal(size=(6, 3, 13))
    valid = tmp_path / "S1_session1_mov1_label.h5"
    write_dhp19_labels(valid, poses, np.arange(1, 7) * 10_000)

    def check(result: object) -> None:
        read_poses, timestamps = result
        assert read_poses.shape[1:] == (3, 13) and timestamps.shape == read_poses.shape[:1]

    cases = _Cases(bounded_read, read_dhp19_labels, check)
    cases.fuzz_bytes(valid)
    stamps = np.arange(1, 7) * 10_000
    mutations = {
        "wrong_joints": {"XYZ/3d_poses": poses[:, :, :12], "XYZ/timestamps": stamps},
        "short_timestamps": {"XYZ/3d_poses": poses, "XYZ/timestamps": stamps[:5]},
        "missing_timestamps": {"XYZ/3d_poses": poses},
        "string_poses": {"XYZ/3d_poses": np.array([b"abc"]), "XYZ/timestamps": np.arange(1)},
        "complex_poses": {"XYZ/3d_poses": poses + 1j, "XYZ/timestamps": stamps},
        "flat_poses": {"XYZ/3d_poses": poses.reshape(6, -1), "XYZ/timestamps": stamps},
        "nan_timestamps": {"XYZ/3d_poses": poses, "XYZ/timestamps": np.where(stamps == 30_000, np.nan, stamps)},
        "inf_timestamps": {"XYZ/3d_poses": poses, "XYZ/timestamps": stamps * np.inf},
        "huge_timestamps": {"XYZ/3d_poses": poses, "XYZ/timestamps": stamps * 1e30},
    }
    for name, datasets in mutations.items():
        path = tmp_path / f"{name}_label.h5"
        with h5py.File(path, "w") as f:
            for key, data in datasets.items():
                f.create_dataset(key, data=data)
        cases.must_raise(path)
    path = tmp_path / "unwritten_label.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("XYZ/3d_poses", shape=(10**9, 3, 13), dtype=np.float64, chunks=(1, 3, 13))
        f.create_dataset("XYZ/timestamps", shape=(10**9,), dtype=np.int64, chunks=(1 << 16,))
    cases.must_raise(path)
    print(f"DHP19 labels .h5: {cases.count} fuzzed inputs")


def test_dhp19_projection_matrices_fuzz(tmp_path: Path, bounded_read) -> None:
    rng = np.random.default_rng(0)
    folder = tmp_path / "valid"
    write_projection_matrices(folder, {2: rng.normal(size=(3, 4))}, rng.normal(size=(4, 3)))

    def read(path: Path) -> object:
        return read_projection_matrices(path.parent, [2])

    def check(result: object) -> None:
        matrices, positions = result
        assert matrices[2].shape == (3, 4) and positions.shape == (4, 3)

    cases = _Cases(bounded_read, read, check)
    for file in ("P2.npy", "camera_positions.npy"):
        good = np.load(folder / file)
        variants = {
            **{f"trunc{i}": (folder / file).read_bytes()[:i] for i in (0, 5, 40, 127)},
            "garbage": b"\x93NUMPY garbage" * 4,
            "nan": good * np.nan,
            "wrong_shape": good.reshape(-1)[:6],
            "strings": good.astype(str),
            **{f"huge{i}": _npy_bytes(shape, "<f8") for i, shape in enumerate(HUGE_SHAPES)},
        }
        for name, content in variants.items():
            case = tmp_path / f"{file[:-4]}_{name}"
            case.mkdir()
            write_projection_matrices(case, {2: np.load(folder / "P2.npy")}, np.load(folder / "camera_positions.npy"))
            if isinstance(content, bytes):
                (case / file).write_bytes(content)
            else:
                np.save(case / file, content)
            cases.must_raise(case / file)
    cases.run(folder / "P2.npy")
    print(f"DHP19 P*.npy / camera_positions.npy: {cases.count} fuzzed inputs")


# ---------------------------------------------------------------------------------------------- AEDAT4


@pytest.mark.parametrize("compression", ["none", "lz4", "zstd"])
def test_aedat4_fuzz_bounded(tmp_path: Path, bounded_read, compression: str) -> None:
    sensor = SensorSize(346, 260, 2)
    events = _events(sensor)
    valid = write_aedat4(tmp_path / "valid.aedat4", events, sensor, compression, events_per_packet=16)
    cases = _Cases(bounded_read, read_aedat4, lambda result: validate(result, sensor))
    cases.fuzz_bytes(valid)
    header = encode_aedat4_header([Aedat4Stream(0, "EVTS", sensor.width, sensor.height)], compression)
    data = valid.read_bytes()
    first_packet = len(header)
    huge = {
        "ioheader_size": data[:14] + struct.pack("<I", 2**32 - 1) + data[18:],
        "packet_size": data[: first_packet + 4] + struct.pack("<I", 2**31 - 1) + data[first_packet + 8 :],
        "vector_count": header + struct.pack("<iI", 0, 36) + _evts_packet_prefix(2**27)[:36]
        if compression == "none"
        else header + struct.pack("<iI", 0, 3) + b"\0\0\0",
        "table_position": encode_aedat4_header([Aedat4Stream(0, "EVTS", 346, 260)], compression, 2**62)
        + data[first_packet:],
    }
    if compression != "none":
        bomb = _zstd_bomb if compression == "zstd" else _lz4_bomb
        for with_size in (True, False):
            frame = bomb(_evts_packet_prefix(BOMB_BYTES // 16), with_size)
            huge[f"bomb_sized{with_size}"] = header + struct.pack("<iI", 0, len(frame)) + frame
    for name, payload in huge.items():
        path = tmp_path / f"{name}.aedat4"
        path.write_bytes(payload)
        cases.must_raise(path)
    print(f"AEDAT4 ({compression}): {cases.count} fuzzed inputs")


# ------------------------------------------------------------------------------------------ MNIST IDX


def test_mnist_idx_fuzz(tmp_path: Path, bounded_read) -> None:
    images = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    valid = tmp_path / "train-images-idx3-ubyte"
    write_idx(valid, images)
    cases = _Cases(bounded_read, lambda path: read_idx(path, expected_ndim=3), error=IDXFormatError)
    cases.fuzz_bytes(valid)
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
        cases.must_raise(path)
        gz_path = tmp_path / f"{name}-idx3-ubyte.gz"
        gz_path.write_bytes(gzip.compress(payload))
        cases.must_raise(gz_path)
    gz_path = tmp_path / "broken-idx3-ubyte.gz"
    gz_path.write_bytes(b"\x1f\x8b" + data[:40])
    cases.must_raise(gz_path)
    bomb = tmp_path / "bomb-idx3-ubyte.gz"
    with gzip.open(bomb, "wb") as f:
        f.write(bytes([0, 0, 0x08, 3]) + np.array([BOMB_BYTES // 784, 28, 28], ">u4").tobytes())
        chunk = bytes(1 << 20)
        for _ in range(BOMB_BYTES // len(chunk)):
            f.write(chunk)
    cases.must_raise(bomb)
    print(f"MNIST IDX: {cases.count} fuzzed inputs")


# ------------------------------------------------------------------------------------------ dSprites


def test_dsprites_npz_fuzz(tmp_path: Path, bounded_read) -> None:
    classes = subset_grid(DSPRITES_KEPT)
    valid = tmp_path / "dsprites.npz"
    write_dsprites_npz(valid, classes)
    expected = load_dsprites_subset(valid, DSPRITES_KEPT)

    def read(path: Path) -> np.ndarray:
        return load_dsprites_subset(path, DSPRITES_KEPT)

    cases = _Cases(bounded_read, read, error=DSpritesFormatError)
    cases.fuzz_bytes(valid)
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
        "float_images": {"imgs": images * 0.5, "latents_classes": good_classes},
        "wrong_image_size": {"imgs": images[:, :32], "latents_classes": good_classes},
        "short_classes": {"imgs": images, "latents_classes": good_classes[:-1]},
        "subset_missing": {"imgs": images[:1], "latents_classes": good_classes[:1]},
    }
    for name, arrays in mutations.items():
        path = tmp_path / f"{name}.npz"
        np.savez_compressed(path, **arrays)
        cases.must_raise(path)
    members = {"imgs": _npy_bytes(images.shape, "|u1", images.tobytes()), "latents_classes": b""}
    for i, shape in enumerate(HUGE_SHAPES):
        members["latents_classes"] = _npy_bytes(shape)
        cases.must_raise(_zip_members(tmp_path / f"huge_classes{i}.npz", members))
    cases.must_raise(_with_member_size(valid, tmp_path / "member_size_huge.npz", "imgs", 2**32 - 2))
    cases.must_raise(_npz_bomb(tmp_path / "bomb.npz", "latents_classes", {"imgs": images}))
    np.testing.assert_array_equal(read(valid), expected)
    print(f"dSprites .npz: {cases.count} fuzzed inputs")
