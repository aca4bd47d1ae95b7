"""The DHP19 recordings of a folder: ``S<subject>_..._events.h5`` with their ``_label.h5``, by subject."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from event_lightning.data.loading.missing_data import DatasetSource, dataset_not_found

__all__ = ["DHP19_SOURCE", "DHP19Recording", "find_recordings", "subject_of"]

log = logging.getLogger(__name__)

_SUBJECT = re.compile(r"^S(\d+)_")
DHP19_SOURCE = DatasetSource(
    "DHP19",
    "<root>/S<subject>_session<s>_mov<m>_events.h5 and <root>/S<subject>_session<s>_mov<m>_label.h5 per recording "
    "(the hybrid ANN-SNN reference's h5 layout: cam<c>_events/x,y,p,t and cam<c>_ms_to_idx; XYZ/3d_poses, "
    "XYZ/timestamps), with P1.npy..P4.npy and camera_positions.npy in data.p_matrices_dir (default <root>)",
    "no tool downloads DHP19: get the recordings from the DHP19 site (sites.google.com/view/dhp19), convert them to "
    "this layout and put them in <root> (docs/hybrid_pose.md, 'Data')",
    "--data event_lightning.data.datasets.dhp19.SyntheticDHP19DataModule, or config/pose_cnn_synthetic.yaml "
    "(and the other config/pose_*_synthetic.yaml)",
)


def subject_of(stem: str) -> int | None:
    """Subject number from a recording name ``S<n>_...``; None if it does not follow that pattern."""
    match = _SUBJECT.match(stem)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class DHP19Recording:
    """One recording: its stem, events file and label file."""

    stem: str
    events_path: Path
    label_path: Path

    @property
    def subject(self) -> int:
        subject = subject_of(self.stem)
        if subject is None:
            raise ValueError(f"{self.events_path}: name does not start with S<subject>_")
        return subject


def find_recordings(root: str | Path, subjects: Sequence[int], exclude: Sequence[str] = ()) -> list[DHP19Recording]:
    """Every ``<stem>_events.h5`` under ``root`` of the given subjects, with its ``<stem>_label.h5``."""
    root = Path(root)
    if not root.is_dir():
        raise dataset_not_found(DHP19_SOURCE, root, root, "the folder does not exist")
    recordings, ignored = [], []
    for events_path in sorted(root.glob("*_events.h5")):
        stem = events_path.name[: -len("_events.h5")]
        subject = subject_of(stem)
        if subject is None:
            ignored.append(events_path.name)
            continue
        if subject not in subjects or stem in exclude:
            continue
        label_path = root / f"{stem}_label.h5"
        if not label_path.is_file():
            raise FileNotFoundError(f"DHP19: {events_path} has no label file; expected {label_path}")
        recordings.append(DHP19Recording(stem, events_path, label_path))
    if ignored:
        log.warning("DHP19: ignored %d file(s) not named S<n>_*_events.h5 in %s: %s", len(ignored), root, ignored)
    return recordings
