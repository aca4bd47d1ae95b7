"""How DHP19 windows are cut from a recording: mode, window and step lengths, time bins, CNN frames.

The timing rules these settings drive are in :mod:`event_lightning.data.datasets.dhp19.windows`; labels come every
:data:`LABEL_PERIOD_MS` (10 ms), so windows and steps are multiples of it and bins divide it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from event_lightning.events.formats.dhp19_h5 import DHP19_LABEL_PERIOD_US

__all__ = ["DHP19Sampling", "LABEL_PERIOD_MS"]

LABEL_PERIOD_MS = DHP19_LABEL_PERIOD_US // 1000


@dataclass(frozen=True)
class DHP19Sampling:
    """How windows are cut from a recording (all times in ms; see :mod:`event_lightning.data.datasets.dhp19.windows`).

    Attributes:
        mode: ``"cnn"`` (CNN frames), ``"sequence"`` (event bins) or ``"hybrid"`` (both).
        window_ms: length of a window; a multiple of 10 ms.
        step_ms: distance between window starts; a multiple of 10 ms.
        bin_ms: length of a time step; divides 10 ms (10 -> 100 Hz, 5 -> 200 Hz).
        cnn_event_count: events in a constant-count CNN frame (7500).
        cnn_bins: time bins of a CNN frame (10 -> 20 channels).
        cnn_frame: ``"count"`` (constant count) or ``"duration"`` (the window before ms_start).
        bin_alignment: ``"window"`` (edges at ms_start + k * bin_ms) or ``"events"`` (reference).
        next_cnn_frame: also return the CNN frame ending at ``ms_start + window_ms``.
        representation: ``"histogram"`` (per-polarity counts, 2 channels a bin; the reference's
            ``stacked_hist``) or ``"voxel_grid"`` (the reference's normalised voxel grid, 1 signed
            channel a bin: :mod:`event_lightning.data.datasets.dhp19.voxel`).
        window_rule: which windows a recording gives: ``"common"`` (every mode starts at the
            constant-count start and keeps whole windows, so all models are scored on the same
            windows) or ``"reference"`` (each reference loader's own rule; see
            :mod:`event_lightning.data.datasets.dhp19.windows`).
    """

    mode: str = "cnn"
    window_ms: int = 100
    step_ms: int = 100
    bin_ms: int = 10
    cnn_event_count: int = 7500
    cnn_bins: int = 10
    cnn_frame: str = "count"
    bin_alignment: str = "window"
    next_cnn_frame: bool = False
    window_rule: str = "common"
    representation: str = "histogram"

    def __post_init__(self) -> None:
        choices = {"mode": ("cnn", "sequence", "hybrid"), "cnn_frame": ("count", "duration")}
        choices["bin_alignment"] = ("window", "events")
        choices["window_rule"] = ("common", "reference")
        choices["representation"] = ("histogram", "voxel_grid")
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"DHP19 data.{name} must be one of {allowed}; found {getattr(self, name)!r}")
        for name in ("window_ms", "step_ms"):
            value = getattr(self, name)
            if value <= 0 or value % LABEL_PERIOD_MS:
                raise ValueError(f"DHP19 data.{name} must be a positive multiple of 10 ms; found {value}")
        if self.bin_ms <= 0 or LABEL_PERIOD_MS % self.bin_ms:
            raise ValueError(f"DHP19 data.bin_ms must divide the 10 ms label period; found {self.bin_ms}")
        if self.cnn_event_count <= 0 or self.cnn_bins <= 0:
            raise ValueError("DHP19 data.cnn_event_count and data.cnn_bins must be > 0")

    @property
    def channels_per_bin(self) -> int:
        """Input channels of one time bin: 2 polarities of counts, or 1 signed voxel channel."""
        return 2 if self.representation == "histogram" else 1

    @property
    def n_steps(self) -> int:
        return self.window_ms // self.bin_ms

    @property
    def n_labels(self) -> int:
        return self.window_ms // LABEL_PERIOD_MS

    @property
    def label_steps(self) -> np.ndarray:
        per_label = LABEL_PERIOD_MS // self.bin_ms
        return (np.arange(self.n_labels, dtype=np.int64) + 1) * per_label - 1

    @property
    def uses_cnn(self) -> bool:
        return self.mode in ("cnn", "hybrid")

    @property
    def uses_sequence(self) -> bool:
        return self.mode in ("sequence", "hybrid")
