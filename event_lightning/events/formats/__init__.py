"""Readers and writers of on-disk event formats; every reader returns :data:`EVENT_DTYPE` events."""

from event_lightning.events.formats.aedat4.header import Aedat4Header, Aedat4Stream
from event_lightning.events.formats.aedat4.read import read_aedat4, read_aedat4_header, read_aedat4_with_sensor
from event_lightning.events.formats.aedat4.write import write_aedat4
from event_lightning.events.formats.asl_dvs_mat import (
    ASL_DVS_CLASSES,
    ASL_DVS_SENSOR_SIZE,
    read_asl_dvs_mat,
    write_asl_dvs_mat,
)
from event_lightning.events.formats.dhp19_h5 import (
    DHP19_SENSOR_SIZE,
    DHP19EventFile,
    read_dhp19_events,
    read_dhp19_labels,
    read_projection_matrices,
    write_dhp19_events,
    write_dhp19_labels,
    write_projection_matrices,
)
from event_lightning.events.formats.dvsgesture_npy import (
    DVSGESTURE_SENSOR_SIZE,
    list_dvsgesture_split,
    read_dvsgesture_npy,
    write_dvsgesture_npy,
)
from event_lightning.events.formats.nmnist import (
    NMNIST_MAX_TIMESTAMP_US,
    NMNIST_SENSOR_SIZE,
    decode_nmnist_bytes,
    encode_nmnist_bytes,
    read_nmnist_bin,
    write_nmnist_bin,
)
from event_lightning.events.formats.spikingjelly_npz import read_spikingjelly_npz, write_spikingjelly_npz
from event_lightning.events.formats.tonic_npy import (
    POKERDVS_COLUMNS,
    POKERDVS_SENSOR_SIZE,
    read_tonic_npy,
    write_tonic_npy,
)

__all__ = [
    "Aedat4Header",
    "Aedat4Stream",
    "read_aedat4",
    "read_aedat4_header",
    "read_aedat4_with_sensor",
    "write_aedat4",
    "DHP19_SENSOR_SIZE",
    "DHP19EventFile",
    "read_dhp19_events",
    "read_dhp19_labels",
    "read_projection_matrices",
    "write_dhp19_events",
    "write_dhp19_labels",
    "write_projection_matrices",
    "ASL_DVS_CLASSES",
    "ASL_DVS_SENSOR_SIZE",
    "DVSGESTURE_SENSOR_SIZE",
    "list_dvsgesture_split",
    "read_asl_dvs_mat",
    "read_dvsgesture_npy",
    "read_spikingjelly_npz",
    "write_asl_dvs_mat",
    "write_dvsgesture_npy",
    "write_spikingjelly_npz",
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
