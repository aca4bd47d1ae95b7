"""Run folders (``runs/<name>/version_N``): which one holds a resume point, which one a failed start left.

A run that fails before it logged anything still leaves the version folder its logger created
(an event file with no values, sometimes ``config.yaml`` and ``hparams.yaml``); the next run then
takes ``version_N+1`` and ``tensorboard --logdir runs`` lists a run that never ran.
:func:`remove_if_unused` removes such a folder and nothing else: never a checkpoint, a logged
value, or a file the run did not write as it started.
"""

from __future__ import annotations

import re
from pathlib import Path

from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

__all__ = ["LAST_CHECKPOINT_PATTERN", "find_last_checkpoint", "remove_if_unused"]

#: ``last.ckpt`` and the ``last-vN.ckpt`` that Lightning's version counter wrote beside it before
LAST_CHECKPOINT_PATTERN = re.compile(r"last(-v\d+)?\.ckpt")
_STARTUP_FILES = re.compile(r"config(_\w+)?\.yaml|hparams\.yaml")
# what the logger writes when a run starts, before any step
_STARTUP_TAGS = re.compile(r"hp_metric|_hparams_/.*")


def find_last_checkpoint(run_root: Path) -> Path:
    """The newest (by modification time) ``last.ckpt`` or ``last-vN.ckpt`` anywhere below ``run_root``.

    Raises:
        FileNotFoundError: there is none.
    """
    candidates = [p for p in run_root.glob("**/last*.ckpt") if LAST_CHECKPOINT_PATTERN.fullmatch(p.name)]
    if not candidates:
        raise FileNotFoundError(
            f"--resume last: no last.ckpt under {run_root} (the logger's save_dir/name); train first (fit "
            "without --resume), or give a checkpoint path (--resume PATH)"
        )
    return max(candidates, key=lambda p: p.stat().st_mtime)


def _holds_logged_values(event_file: Path) -> bool:
    try:
        for event in EventFileLoader(str(event_file)).Load():
            if event.HasField("summary") and any(not _STARTUP_TAGS.fullmatch(v.tag) for v in event.summary.value):
                return True
    except Exception:  # noqa: BLE001 - a file we cannot read is kept
        return True
    return False


def _unused(path: Path) -> bool:
    if path.is_symlink():
        return False
    if path.is_dir():
        return all(_unused(child) for child in path.iterdir())
    if path.name.startswith("events.out.tfevents."):
        return not _holds_logged_values(path)
    return bool(_STARTUP_FILES.fullmatch(path.name))


def remove_if_unused(folder: Path) -> bool:
    """Delete ``folder`` when it holds only what a run writes as it starts; return whether it did.

    Kept: any checkpoint, any event file with a logged value (beyond the hyperparameter summary a
    logger writes at the start), any other file, and symlinks.
    """
    if not folder.is_dir() or not _unused(folder):
        return False
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    folder.rmdir()
    return True
