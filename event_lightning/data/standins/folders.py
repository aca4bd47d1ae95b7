"""Where a DataModule's stand-in lives, and how it gets there without disturbing another run.

Every DataModule with ``synthetic`` reads its stand-in from one folder per generation
parameters, ``<root>/synthetic-<dataset>-<hash of the parameters>``, so two runs on the same
``root`` with different stand-in sizes use two folders and never delete each other's files.
:func:`ensure_standin` writes a missing folder once: under a lock (``<root>/.<folder>.lock``; a
second process waits and then reads the finished folder), into a hidden staging folder beside it,
renamed into place when complete (atomic: a reader sees no folder or a whole one; an interrupted
write leaves only a hidden ``.partial`` folder; of two writers the lock could not keep apart, the
first rename wins and the other discards its copy). Nothing else is ever deleted or overwritten.

A ``root`` that already holds exactly the requested stand-in in the dataset's own layout (the
generators' own completion markers, as written before this scheme or by calling a generator on
it directly) is read as it is.

Inside :func:`read_only_standins` (``python -m event_lightning.data inspect``) a missing stand-in
is a :class:`StandInMissingError` that lists the stand-ins present, instead of a write.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

__all__ = [
    "DESCRIPTION_FILE",
    "StandInMissingError",
    "ensure_standin",
    "read_only_standins",
    "standin_folder",
    "standin_key",
]

DESCRIPTION_FILE = "standin.json"
_read_only: ContextVar[bool] = ContextVar("read_only_standins", default=False)


class StandInMissingError(FileNotFoundError):
    """The stand-in is not written and writing is not allowed here (``inspect``)."""


@contextlib.contextmanager
def read_only_standins() -> Iterator[None]:
    """Within this block :func:`ensure_standin` never writes; a missing stand-in raises."""
    token = _read_only.set(True)
    try:
        yield
    finally:
        _read_only.reset(token)


def standin_key(params: Any) -> str:
    """12 hex digits of the SHA-256 of ``params`` as sorted JSON: the part of the folder name that varies."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:12]


def standin_folder(root: str | Path, dataset: str, params: Any, complete: Callable[[Path], bool]) -> Path:
    """The folder a DataModule reads its stand-in from; nothing is written.

    ``root`` itself when it already holds this stand-in (``complete(root)``), else
    ``root/synthetic-<dataset>-<standin_key(params)>``.
    """
    root = Path(root)
    return root if complete(root) else root / f"synthetic-{dataset}-{standin_key(params)}"


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file is closed, or the process dies
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _present(root: Path, exclude: Path) -> list[str]:
    found = []
    for description in sorted(root.glob(f"synthetic-*/{DESCRIPTION_FILE}")):
        if description.parent != exclude:
            with contextlib.suppress(OSError, ValueError):
                found.append(f"{description.parent.name}: {json.loads(description.read_text()).get('params')}")
    return found


def ensure_standin(
    folder: Path, write: Callable[[Path], Any], complete: Callable[[Path], bool], params: Any = None
) -> Path:
    """``folder`` holding the stand-in: written once by ``write(staging)`` unless ``complete(folder)``.

    Args:
        folder: from :func:`standin_folder`.
        write: writes the stand-in into the (empty) folder it is given.
        complete: whether a folder holds the whole stand-in (the generator's completion marker).
        params: recorded in ``folder/standin.json`` for people and for :class:`StandInMissingError`.

    Raises:
        StandInMissingError: missing inside :func:`read_only_standins`.
        FileExistsError: ``folder`` exists but is incomplete (an interrupted writer of an older
            version); it is left alone.
    """
    folder = Path(folder)
    if complete(folder):
        return folder
    if _read_only.get():
        present = _present(folder.parent, folder)
        raise StandInMissingError(
            f"no stand-in {folder.name} (parameters {params}) under {folder.parent}, and this command only reads; "
            + (f"stand-ins present: {'; '.join(present)}. " if present else "no stand-in is present there. ")
            + "A training run (fit with data.synthetic) or `python -m event_lightning.data prepare <dataset> "
            f"--root {folder.parent} --synthetic` writes one"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _locked(folder.parent / f".{folder.name}.lock"):
        if complete(folder):  # another process wrote it while this one waited
            return folder
        if folder.exists():
            raise FileExistsError(
                f"{folder} exists but holds no complete stand-in (an interrupted write of an older version?); "
                "it was left as it is: delete it to have it written again"
            )
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=folder.parent))
        try:
            write(staging)
            (staging / DESCRIPTION_FILE).write_text(json.dumps({"params": params}, indent=1, default=str))
            try:
                os.rename(staging, folder)
            except OSError:
                # a writer the lock could not see (another node without shared locks) finished first
                if not complete(folder):
                    raise
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    return folder
