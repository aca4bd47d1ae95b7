"""AEDAT4 reader/writer: equality with the ``aedat`` reference decoder, and fuzzing (issue #8).

Files written by :func:`write_aedat4` (uncompressed, LZ4, Zstd) are decoded by the Rust-based
``aedat`` package and must give exactly our reader's events.  The fuzz part follows
``test_reader_fuzz.py``: truncation at every structural offset class (magic, IOHeader size,
IOHeader body, packet header, packet body, packet boundaries, data table), seeded random bytes
alone and behind the valid magic / header, mutated packet sizes, stream ids and FlatBuffer
offsets, broken XML descriptions, events beyond the declared sensor, negative timestamps and
corrupted compressed payloads.  Every case must raise an EventFormatError naming the file, or --
where the mutation leaves the meaning intact -- return exactly the original events. The memory cap
and compression bombs are in ``test_reader_fuzz.py``.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import aedat
import lz4.frame
import numpy as np
import pytest
import zstandard

from event_lightning.events.core import EVENT_DTYPE, EventFormatError, SensorSize, make_events, validate
from event_lightning.events.formats.aedat4.header import Aedat4Stream
from event_lightning.events.formats.aedat4.layout import AEDAT4_EVENT_RECORD, AEDAT4_MAGIC
from event_lightning.events.formats.aedat4.read import read_aedat4, read_aedat4_header, read_aedat4_with_sensor
from event_lightning.events.formats.aedat4.write import encode_aedat4_header, encode_aedat4_packet, write_aedat4

SENSOR = SensorSize(346, 260, 2)
N_EVENTS = 300
PER_PACKET = 64
T0_US = 1_700_000_000_000_000  # DV timestamps are Unix-epoch µs


def _events(n: int = N_EVENTS, seed: int = 0, sensor: SensorSize = SENSOR) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = T0_US + np.sort(rng.integers(0, n * 500, n))
    return make_events(rng.integers(0, sensor.width, n), rng.integers(0, sensor.height, n), t, rng.integers(0, 2, n))


def _records(events: np.ndarray) -> np.ndarray:
    records = np.zeros(len(events), dtype=AEDAT4_EVENT_RECORD)
    records["t"], records["x"], records["y"], records["on"] = (
        events["t"],
        events["x"],
        events["y"],
        events["p"],
    )
    return records


def _reference(path: Path) -> tuple[dict[int, dict], dict[int, np.ndarray]]:
    """The ``aedat`` package's streams and its events per event stream, as :data:`EVENT_DTYPE`."""
    decoder = aedat.Decoder(path)
    streams = decoder.id_to_stream()
    per_stream: dict[int, list[np.ndarray]] = {i: [] for i, s in streams.items() if s["type"] == "events"}
    for packet in decoder:
        if "events" in packet:
            raw = packet["events"]
            per_stream[packet["stream_id"]].append(make_events(raw["x"], raw["y"], raw["t"], raw["on"]))
    events = {i: np.concatenate(v) if v else np.zeros(0, EVENT_DTYPE) for i, v in per_stream.items()}
    return streams, events


# ------------------------------------------------------------------------------- round trips, reference


@pytest.mark.parametrize("compression", ["none", "lz4", "lz4_high", "zstd", "zstd_high"])
def test_round_trip_equals_aedat_reference(tmp_path: Path, compression: str) -> None:
    events = _events(5000, seed=1)
    path = write_aedat4(tmp_path / f"rec_{compression}.aedat4", events, SENSOR, compression, events_per_packet=700)
    got, sensor = read_aedat4_with_sensor(path)
    assert sensor == SENSOR
    assert got.dtype == EVENT_DTYPE
    np.testing.assert_array_equal(got, events)
    streams, reference = _reference(path)
    assert streams == {0: {"type": "events", "width": 346, "height": 260}}
    np.testing.assert_array_equal(reference[0], events)
    header = read_aedat4_header(path)
    assert header.compression == compression
    assert [p.stream_id for p in header.packets] == [0] * 8  # ceil(5000 / 700)
    assert 0 < header.data_table_position < path.stat().st_size


def test_first_event_stream_is_read_and_others_skipped(tmp_path: Path) -> None:
    """Streams in XML order TRIG 3, EVTS 1, EVTS 0: the default is stream 1, the first EVTS listed."""
    a, b = _events(200, seed=2), _events(150, seed=3, sensor=SensorSize(640, 480))
    # TRIG elements are FlatBuffers tables (not structs); an empty vector is a valid TriggerPacket.
    no_triggers = np.zeros(0, dtype=AEDAT4_EVENT_RECORD)
    streams = [Aedat4Stream(3, "TRIG"), Aedat4Stream(1, "EVTS", 346, 260), Aedat4Stream(0, "EVTS", 640, 480)]
    for compression in ("none", "lz4", "zstd"):
        packets = [
            encode_aedat4_packet(0, "EVTS", _records(b[:70]), compression),
            encode_aedat4_packet(3, "TRIG", no_triggers, compression),
            encode_aedat4_packet(1, "EVTS", _records(a[:120]), compression),
            encode_aedat4_packet(0, "EVTS", _records(b[70:]), compression),
            encode_aedat4_packet(1, "EVTS", _records(a[120:]), compression),
        ]
        path = tmp_path / f"multi_{compression}.aedat4"
        path.write_bytes(encode_aedat4_header(streams, compression) + b"".join(packets))
        got, sensor = read_aedat4_with_sensor(path)
        np.testing.assert_array_equal(got, a)
        assert sensor == SensorSize(346, 260, 2)
        got_b, sensor_b = read_aedat4_with_sensor(path, stream_id=0)
        np.testing.assert_array_equal(got_b, b)
        assert sensor_b == SensorSize(640, 480, 2)
        reference_streams, reference = _reference(path)
        assert reference_streams[3] == {"type": "triggers"}
        np.testing.assert_array_equal(reference[1], a)
        np.testing.assert_array_equal(reference[0], b)
        with pytest.raises(EventFormatError, match=f"{path.name}.*event stream 3"):
            read_aedat4(path, stream_id=3)


def test_frame_and_imu_packets_are_skipped_undecoded(tmp_path: Path) -> None:
    events = _events(100, seed=4)
    streams = [Aedat4Stream(0, "FRME", 346, 260), Aedat4Stream(1, "IMUS"), Aedat4Stream(2, "EVTS", 346, 260)]
    frame_payload = b"not a frame flatbuffer, never parsed" * 3
    path = tmp_path / "frames.aedat4"
    path.write_bytes(
        encode_aedat4_header(streams)
        + struct.pack("<iI", 0, len(frame_payload))
        + frame_payload
        + encode_aedat4_packet(2, "EVTS", _records(events[:50]))
        + struct.pack("<iI", 1, 4)
        + b"imus"
        + encode_aedat4_packet(2, "EVTS", _records(events[50:]))
    )
    np.testing.assert_array_equal(read_aedat4(path), events)


def test_empty_recording(tmp_path: Path) -> None:
    path = write_aedat4(tmp_path / "empty.aedat4", np.zeros(0, EVENT_DTYPE), SENSOR, "lz4")
    got, sensor = read_aedat4_with_sensor(path)
    assert got.dtype == EVENT_DTYPE and len(got) == 0 and sensor == SENSOR
    _, reference = _reference(path)
    assert len(reference[0]) == 0


def test_unsorted_packets_are_stably_sorted_like_the_other_readers(tmp_path: Path) -> None:
    events = _events(120, seed=5)
    late, early = events[60:], events[:60]
    path = tmp_path / "unsorted.aedat4"
    path.write_bytes(
        encode_aedat4_header([Aedat4Stream(0, "EVTS", 346, 260)])
        + encode_aedat4_packet(0, "EVTS", _records(late))
        + encode_aedat4_packet(0, "EVTS", _records(early))
    )
    np.testing.assert_array_equal(read_aedat4(path), events)


def test_large_recording_many_packets(tmp_path: Path) -> None:
    events = _events(400_000, seed=6)
    path = write_aedat4(tmp_path / "large.aedat4", events, SENSOR, "zstd", events_per_packet=5000)
    np.testing.assert_array_equal(read_aedat4(path), events)
    assert len(read_aedat4_header(path).packets) == 80


def test_missing_codec_package_names_file_and_pip_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lz4_path = write_aedat4(tmp_path / "needs_lz4.aedat4", _events(), SENSOR, "lz4")
    zstd_path = write_aedat4(tmp_path / "needs_zstd.aedat4", _events(), SENSOR, "zstd")
    for name in ("lz4", "lz4.frame", "zstandard"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` raise ImportError
    with pytest.raises(ImportError, match=r"needs_lz4\.aedat4.*pip install lz4"):
        read_aedat4(lz4_path)
    with pytest.raises(ImportError, match=r"needs_zstd\.aedat4.*pip install zstandard"):
        read_aedat4(zstd_path)
    with pytest.raises(ImportError, match="pip install lz4"):
        write_aedat4(tmp_path / "cannot.aedat4", _events(), SENSOR, "lz4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["needs_lz4.aedat4", "needs_zstd.aedat4"]


def test_writer_refuses_what_the_format_cannot_hold(tmp_path: Path) -> None:
    events = _events()
    with pytest.raises(EventFormatError, match="x outside"):
        write_aedat4(tmp_path / "small.aedat4", events, SensorSize(10, 260))
    with pytest.raises(EventFormatError, match="sorted"):
        write_aedat4(tmp_path / "unsorted.aedat4", events[::-1], SENSOR)
    with pytest.raises(ValueError, match="compression"):
        write_aedat4(tmp_path / "brotli.aedat4", events, SENSOR, "brotli")
    with pytest.raises(ValueError, match="bool polarity"):
        write_aedat4(tmp_path / "p3.aedat4", events, SensorSize(346, 260, 3))
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------------------------- fuzzing


def _named_error_or_same(path: Path, expected: np.ndarray | None) -> str:
    """Read ``path``: an exception must be an EventFormatError naming the file; a result must equal
    ``expected`` exactly."""
    try:
        result = read_aedat4(path)
    except Exception as error:  # noqa: BLE001 - the type is checked: only the format error is allowed
        assert isinstance(error, EventFormatError), f"{path.name}: {type(error).__name__}: {error}"
        assert path.name in str(error), f"{type(error).__name__} does not name {path.name}: {error}"
        return "error"
    assert expected is not None, f"{path.name}: the reader returned {len(result)} events for a broken file"
    validate(result, SENSOR)
    np.testing.assert_array_equal(result, expected, err_msg=f"{path.name}: silently different events")
    return "same"


class _Fuzzer:
    """Writes each fuzzed input to its own file and counts them."""

    def __init__(self, folder: Path, tag: str) -> None:
        self.folder, self.tag, self.count = folder, tag, 0

    def path(self, name: str) -> Path:
        self.count += 1
        return self.folder / f"{self.tag}_{name}.aedat4"

    def must_raise(self, name: str, data: bytes) -> None:
        path = self.path(name)
        path.write_bytes(data)
        assert _named_error_or_same(path, None) == "error"

    def raise_or_same(self, name: str, data: bytes, expected: np.ndarray) -> str:
        path = self.path(name)
        path.write_bytes(data)
        return _named_error_or_same(path, expected)


def _patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


def _with_description(xml: str, compression: str = "none") -> bytes:
    """Magic + IOHeader as :func:`encode_aedat4_header` writes it, with ``xml`` as the description."""
    header = encode_aedat4_header([Aedat4Stream(0, "EVTS", 346, 260)], compression)
    buffer = header[len(AEDAT4_MAGIC) + 4 :]
    string = header.index(b"<dv") - len(AEDAT4_MAGIC) - 4 - 4  # the description's length field
    text = xml.encode("utf-8")
    body = buffer[:string] + struct.pack("<I", len(text)) + text + b"\0"
    body += b"\0" * (-len(body) % 4)
    return AEDAT4_MAGIC + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize("compression", ["none", "lz4", "zstd"])
def test_aedat4_fuzz(tmp_path: Path, compression: str) -> None:
    events = _events()
    valid = write_aedat4(tmp_path / "valid.aedat4", events, SENSOR, compression, events_per_packet=PER_PACKET)
    data = valid.read_bytes()
    header = read_aedat4_header(valid)
    fuzz = _Fuzzer(tmp_path, compression)
    magic_end = len(AEDAT4_MAGIC)
    packets_start = header.packets[0].offset
    table = header.data_table_position

    # (a) Truncation at every offset class; the data table makes every cut detectable.
    first, second = header.packets[0], header.packets[1]
    offsets = {0, 1, 5, magic_end - 1, magic_end, magic_end + 2, magic_end + 4, magic_end + 20}
    offsets |= {packets_start - 1, packets_start, packets_start + 3, packets_start + 8}
    offsets |= {
        first.offset + 8 + first.size // 2,
        second.offset - 1,
        table - 1,
        table,
        table + 3,
        len(data) - 1,
    }
    offsets |= {p.offset for p in header.packets} | {p.offset + 4 for p in header.packets}
    for offset in sorted(offsets):
        fuzz.must_raise(f"trunc{offset}", data[:offset])

    # (b) Seeded random bytes: alone, behind the magic, behind the whole IOHeader.
    for seed in range(3):
        rng = np.random.default_rng(seed)
        for length in (1, 7, 64, 300, 2048):
            noise = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
            fuzz.must_raise(f"random{seed}_{length}", noise)
            fuzz.must_raise(f"magic_random{seed}_{length}", AEDAT4_MAGIC + noise)
            fuzz.must_raise(f"header_random{seed}_{length}", data[:packets_start] + noise)
            spliced = data[:packets_start] + noise + data[packets_start + length :]
            fuzz.raise_or_same(f"packets_random{seed}_{length}", spliced, events)

    # (c) IOHeader fields: size, compression enum, data table position, description offset.
    root = magic_end + 4 + struct.unpack_from("<I", data, magic_end + 4)[0]  # IOHeader table position
    for name, fmt, offset, value in [
        ("header_size_huge", "<I", magic_end, 2**31),
        ("header_size_small", "<I", magic_end, 12),
        ("header_root_beyond", "<I", magic_end + 4, 10**6),
        ("vtable_offset_beyond", "<i", root, -(10**6)),
        ("compression_unknown", "<i", root + 4, 7),
        ("compression_negative", "<i", root + 4, -1),
        ("compression_changed", "<i", root + 4, 0 if compression != "none" else 1),
        ("table_beyond_file", "<q", root + 8, len(data) + 10),
        ("table_inside_packet", "<q", root + 8, packets_start + 3),
        ("table_before_packets", "<q", root + 8, 5),
        ("table_missing_packets", "<q", root + 8, header.packets[2].offset),
        ("table_negative", "<q", root + 8, -5),
        ("description_offset_beyond", "<I", root + 16, 10**6),
    ]:
        fuzz.must_raise(name, _patched(data, offset, fmt, value))
    # Without the data table the same packets are read to the end of the file.
    no_table = _patched(data, root + 8, "<q", -1)[:table]
    assert fuzz.raise_or_same("no_data_table", no_table, events) == "same"
    if compression == "none":
        # Table entry 0 (prefix, root, id, vtable, table, vector length, then the entry offsets):
        # its ByteOffset points at the first payload (DV's convention), 8 bytes past the header.
        entry_slot = table + 4 + 28
        entry = entry_slot + struct.unpack_from("<I", data, entry_slot)[0]
        assert struct.unpack_from("<q", data, entry + 4)[0] == first.offset + 8
        fuzz.must_raise("table_offset_at_header", _patched(data, entry + 4, "<q", first.offset))
        fuzz.must_raise("table_stream_id", _patched(data, entry + 12, "<i", 1))
        fuzz.must_raise("table_count_minus_one", _patched(data, table + 4 + 24, "<I", len(header.packets) - 1))

    # (d) Packet headers: sizes, stream ids.
    for name, offset, fmt, value in [
        ("size_plus_one", first.offset + 4, "<I", first.size + 1),
        ("size_minus_one", first.offset + 4, "<I", first.size - 1),
        ("size_huge", first.offset + 4, "<I", 2**32 - 1),
        ("size_zero", first.offset + 4, "<I", 0),
        ("last_size_into_table", header.packets[-1].offset + 4, "<I", header.packets[-1].size + 4),
        ("stream_unknown", first.offset, "<i", 7),
        ("stream_negative", second.offset, "<i", -1),
    ]:
        fuzz.must_raise(name, _patched(data, offset, fmt, value))

    # (e) Broken XML descriptions (files without a data table, packets copied unchanged).
    packets = data[packets_start:table]
    info = '<node name="info"><attr key="sizeX">{}</attr><attr key="sizeY">{}</attr></node>'
    stream = '<node name="{}"><attr key="typeIdentifier">{}</attr>{}</node>'

    def dv(*nodes: str) -> str:
        return f'<dv><node name="outInfo">{"".join(nodes)}</node></dv>'

    descriptions = {
        "xml_no_event_stream": dv(stream.format(0, "FRME", info.format(346, 260))),
        "xml_no_outinfo": '<dv><node name="inInfo"></node></dv>',
        "xml_no_streams": '<dv><node name="outInfo"></node></dv>',
        "xml_wrong_root": dv(stream.format(0, "EVTS", info.format(346, 260))).replace("dv>", "dx>"),
        "xml_malformed": '<dv><node name="outInfo">',
        "xml_missing_size": dv(stream.format(0, "EVTS", "")),
        "xml_size_text": dv(stream.format(0, "EVTS", info.format("abc", 260))),
        "xml_size_zero": dv(stream.format(0, "EVTS", info.format(0, 260))),
        "xml_size_unicode_digit": dv(stream.format(0, "EVTS", info.format("²", 9))),
        "xml_sensor_too_small": dv(stream.format(0, "EVTS", info.format(20, 20))),
        "xml_stream_id_text": dv(stream.format("a", "EVTS", info.format(346, 260))),
        "xml_duplicate_ids": '<dv><node name="outInfo">'
        + stream.format(0, "EVTS", info.format(346, 260)) * 2
        + "</node></dv>",
        "xml_no_type": '<dv><node name="outInfo"><node name="0"></node></node></dv>',
    }
    for name, xml in descriptions.items():
        fuzz.must_raise(name, _with_description(xml, compression) + packets)
    not_utf8 = _with_description("<dv/>", compression).replace(b"<dv/>", b"\xff\xfe<dv")
    fuzz.must_raise("xml_not_utf8", not_utf8 + packets)
    control = _with_description(dv(stream.format(0, "EVTS", info.format(346, 260))), compression)
    # The description-replacing helper itself keeps a valid file valid.
    assert fuzz.raise_or_same("xml_control", control + packets, events) == "same"

    # (f) Packet contents: events beyond the sensor, negative times, bad bool bytes, bad FlatBuffers.
    stream0 = encode_aedat4_header([Aedat4Stream(0, "EVTS", 346, 260)], compression)

    def one_packet(records: np.ndarray) -> bytes:
        return stream0 + encode_aedat4_packet(0, "EVTS", records, compression)

    good = _records(events)
    for name, field, index, value in [
        ("x_beyond", "x", 10, 346),
        ("y_beyond", "y", 0, 260),
        ("x_negative", "x", 299, -1),
        ("y_negative", "y", 5, -32768),
        ("t_negative", "t", 0, -1),
        ("on_byte_2", "on", 7, 2),
        ("on_byte_255", "on", 8, 255),
    ]:
        bad = good.copy()
        bad[field][index] = value
        fuzz.must_raise(name, one_packet(bad))
    assert fuzz.raise_or_same("one_packet_control", one_packet(good), events) == "same"
    fuzz.must_raise("trigger_identifier_in_event_stream", stream0 + encode_aedat4_packet(0, "TRIG", good, compression))

    # FlatBuffer offsets inside an uncompressed packet (size prefix at +8, root at +12, ...).
    raw = stream0 + encode_aedat4_packet(0, "EVTS", good)
    body = len(stream0) + 8
    flat_mutations = [
        ("fb_size_prefix", body, "<I", 0),
        ("fb_root_beyond", body + 4, "<I", 10**6),
        ("fb_root_into_identifier", body + 4, "<I", 4),
        ("fb_identifier", body + 8, "<I", 0x58535645),
        ("fb_vtable_size_odd", body + 12, "<H", 7),
        ("fb_vtable_size_huge", body + 12, "<H", 0xFFFF),
        ("fb_table_size_huge", body + 14, "<H", 0xFFFF),
        ("fb_field_offset_beyond_table", body + 16, "<H", 40),
        ("fb_soffset_beyond", body + 20, "<i", 10**6),
        ("fb_soffset_negative", body + 20, "<i", -(10**6)),
        ("fb_vector_offset_beyond", body + 24, "<I", 10**6),
        ("fb_vector_count_plus_one", body + 28, "<I", N_EVENTS + 1),
        ("fb_vector_count_huge", body + 28, "<I", 2**32 - 1),
    ]

    def rewrapped(mutated: bytes) -> bytes:
        """The mutated FlatBuffer in a valid frame of the file's compression."""
        if compression == "none":
            return mutated
        payload = mutated[body:]
        frame = lz4.frame.compress(payload) if compression == "lz4" else zstandard.compress(payload)
        return stream0 + struct.pack("<iI", 0, len(frame)) + frame

    for name, offset, fmt, value in flat_mutations:
        fuzz.must_raise(name, rewrapped(_patched(raw, offset, fmt, value)))
    # A vector shorter than written is a valid FlatBuffer: exactly its first events, nothing invented.
    shorter = rewrapped(_patched(raw, body + 28, "<I", N_EVENTS - 1))
    assert fuzz.raise_or_same("fb_vector_count_minus_one", shorter, events[:-1]) == "same"

    # (g) Compressed payloads: every byte flip raises (frame checksums) or changes nothing.
    if compression != "none":
        rng = np.random.default_rng(7)
        for packet in header.packets[:3]:
            start = packet.offset + 8
            positions = {start, start + 1, start + 4, start + packet.size // 2, start + packet.size - 1}
            positions |= set(rng.integers(start, start + packet.size, 12).tolist())
            for position in sorted(positions):
                flipped = bytearray(data)
                flipped[position] ^= 0xFF
                fuzz.raise_or_same(f"flip{position}", bytes(flipped), events)
        # Truncated and over-long frames with consistent packet sizes (no data table).
        frame = encode_aedat4_packet(0, "EVTS", good, compression)[8:]
        for name, payload in [
            ("frame_truncated", frame[:-5]),
            ("frame_half", frame[: len(frame) // 2]),
            ("frame_trailing", frame + b"\0\1\2"),
            ("frame_twice", frame + frame),
            ("frame_garbage", bytes(range(64))),
        ]:
            fuzz.must_raise(name, stream0 + struct.pack("<iI", 0, len(payload)) + payload)
        # The data table, compressed like the packets: corrupted, it is an error naming the file.
        for position in (table, table + 5, table + 12, len(data) - 2):
            flipped = bytearray(data)
            flipped[position] ^= 0x5A
            fuzz.raise_or_same(f"table_flip{position}", bytes(flipped), events)

    assert fuzz.count > 100
    print(f"AEDAT4 ({compression}): {fuzz.count} fuzzed inputs")
