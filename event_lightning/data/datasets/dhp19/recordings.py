"""The DHP19 recordings of a folder: ``S<subject>_..._events.h5`` with their ``_label.h5``, by subject."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DHP19Recording", "find_recordings", "subject_of"]

log = logging.getLogger(__name__)

_SUBJECT = re.compile(r"^S(\d+)_")


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
        raise FileNotFoundError(
            f"DHP19: folder {root} does not exist. Put the per-recording files <stem>_events.h5 and "
            "<stem>_label.h5 (DHP19 converted to the hybrid_ann_snn h5 layout) and P1..P4.npy, "
            "camera_positions.npy there, or use SyntheticDHP19DataModule"
        )
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
