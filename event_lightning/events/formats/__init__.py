"""Readers and writers of on-disk event formats; every reader returns :data:`EVENT_DTYPE` events."""

from event_lightning.events.formats.nmnist import (
    NMNIST_MAX_TIMESTAMP_US,
    NMNIST_SENSOR_SIZE,
    decode_nmnist_bytes,
    encode_nmnist_bytes,
    read_nmnist_bin,
    write_nmnist_bin,
)
from event_lightning.events.formats.tonic_npy import (
    POKERDVS_COLUMNS,
    POKERDVS_SENSOR_SIZE,
    read_tonic_npy,
    write_tonic_npy,
)

__all__ = [
    "NMNIST_MAX_TIMESTAMP_US",
    "NMNIST_SENSOR_SIZE",
    "POKERDVS_COLUMNS",
    "POKERDVS_SENSOR_SIZE",
    "decode_nmnist_bytes",
    "encode_nmnist_bytes",
    "read_nmnist_bin",
    "read_tonic_npy",
    "write_nmnist_bin",
    "write_tonic_npy",
]
