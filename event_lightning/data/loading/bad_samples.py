"""``on_bad_sample: raise | skip``: what a DataModule does with a file it cannot read.

``raise`` (the default) lets the reader's error through: it names the file and what is wrong.
``skip`` leaves the file out, logs a warning naming it and the reason, and writes one record per
skipped sample to a :class:`BadSampleLedger`, which the end-of-epoch reporter
(:class:`event_lightning.callbacks.bad_samples.BadSampleReporter`) reads to log the totals.

A bad sample is one whose reading or validation raises one of :data:`BAD_SAMPLE_ERRORS`: the
project's :class:`EventFormatError` and the ``OSError`` / ``ValueError`` / ``EOFError`` that file
reading raises on a truncated or garbled file. Programming errors (``TypeError``,
``AttributeError``, ``IndexError``, ``KeyError`` ...) always propagate.

Two places drop files:

* per sample (datasets that read a file in ``__getitem__``, possibly in DataLoader worker
  processes): :class:`BadSampleGuard` wraps the dataset and returns a :class:`SkippedSample`
  marker instead of the sample; :class:`DropBadSamples` wraps the collate function and leaves the
  markers out of the batch, so a batch holds fewer samples. A batch whose samples are ALL bad
  raises :class:`AllSamplesBadError` naming the files (a model cannot take an empty batch; with
  that many bad files the dataset needs repairing). The sampler is untouched, so the order of the
  remaining samples is the same as in a run without bad files.
* at setup (datasets that read or pack every file before training): the DataModule leaves the
  file out of the split and records it once with :meth:`BadSampleLedger.record_setup`.

The ledger is a folder of append-only JSON-lines files, one per process, so records written by
DataLoader workers (forked or spawned, persistent or not) reach the main process.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import uuid
import warnings
import weakref
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from torch.utils.data import Dataset

from event_lightning.events.core import EventFormatError

__all__ = [
    "AllSamplesBadError",
    "BAD_SAMPLE_ERRORS",
    "BAD_SAMPLE_POLICIES",
    "BadSampleGuard",
    "BadSampleLedger",
    "BadSamplePolicy",
    "BadSampleWarning",
    "DropBadSamples",
    "IndexedFiles",
    "SkippedSample",
    "check_bad_sample_policy",
    "guard_loader",
    "record_setup_skips",
]

log = logging.getLogger(__name__)

BadSamplePolicy = Literal["raise", "skip"]
BAD_SAMPLE_POLICIES: tuple[str, ...] = ("raise", "skip")
BAD_SAMPLE_ERRORS: tuple[type[BaseException], ...] = (EventFormatError, OSError, ValueError, EOFError)
"""Errors that mark a sample's file as bad (EventFormatError is a ValueError; listed for clarity)."""

SETUP_STAGE = "setup"


class BadSampleWarning(UserWarning):
    """Files were left out under ``on_bad_sample: skip``."""


class AllSamplesBadError(RuntimeError):
    """Every sample of a batch was bad under ``on_bad_sample: skip``."""


def check_bad_sample_policy(value: Any, key: str = "data.on_bad_sample") -> BadSamplePolicy:
    """``value`` if it is one of :data:`BAD_SAMPLE_POLICIES`, else ValueError naming ``key``."""
    if value not in BAD_SAMPLE_POLICIES:
        raise ValueError(f"{key} must be one of {BAD_SAMPLE_POLICIES}, found {value!r}")
    return value


@dataclass(frozen=True)
class SkippedSample:
    """One skipped sample: the stage of the loader (``train``, ``val``, ``test``, ``predict``, or
    ``setup`` for files left out before training), its file, the reason and the dataset index
    (-1 for setup records)."""

    stage: str
    file: str
    reason: str
    index: int = -1


class BadSampleLedger:
    """Records of skipped samples, shared by the main process and its DataLoader workers.

    Each process appends to ``<directory>/<pid>.jsonl`` (one JSON object per line); the folder
    is created on the first record, so a run without bad files writes nothing. The process that
    created the ledger removes the folder when the ledger is garbage-collected or at exit.

    Args:
        directory: where the records go (default: a fresh folder under the system temp folder).
    """

    def __init__(self, directory: str | os.PathLike | None = None) -> None:
        if directory is None:
            unique = f"{os.getpid()}-{uuid.uuid4().hex}"
            directory = Path(tempfile.gettempdir()) / "event_lightning_bad_samples" / unique
            # Only a folder this ledger invented is removed; a given one belongs to the caller.
            self._finalizer: weakref.finalize | None = weakref.finalize(
                self, _remove_if_owner, str(directory), os.getpid()
            )
        else:
            self._finalizer = None
        self.directory = Path(directory)
        self._setup_files: set[str] = set()

    def __getstate__(self) -> dict[str, Any]:
        # Copies in worker processes never delete the folder.
        return {**self.__dict__, "_finalizer": None}

    def record(self, stage: str, file: str, reason: str, index: int = -1) -> SkippedSample:
        """Append one record (safe from any process); returns it."""
        entry = SkippedSample(stage, str(file), str(reason), int(index))
        self.directory.mkdir(parents=True, exist_ok=True)
        line = json.dumps(asdict(entry)) + "\n"
        # One write of one short line to a file only this process writes: never interleaved.
        with open(self.directory / f"{os.getpid()}.jsonl", "a", encoding="utf-8") as handle:
            handle.write(line)
        return entry

    def record_setup(self, file: str | os.PathLike, reason: str) -> bool:
        """Record a file left out at setup, once per file (setup may build a split twice, e.g.
        DHP19 validation and test on the same subjects); returns whether it was new."""
        key = str(file)
        if key in self._setup_files:
            return False
        self._setup_files.add(key)
        self.record(SETUP_STAGE, key, reason)
        return True

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob("*.jsonl")) if self.directory.is_dir() else []

    def marks(self) -> dict[str, int]:
        """Complete lines per process file now: pass to :meth:`records` as ``since``."""
        return {path.name: len(_complete_lines(path)) for path in self._files()}

    def records(self, since: dict[str, int] | None = None, stage: str | None = None) -> list[SkippedSample]:
        """Records written after ``since`` (all when None), of ``stage`` only when given."""
        since = since or {}
        out = []
        for path in self._files():
            for line in _complete_lines(path)[since.get(path.name, 0) :]:
                entry = SkippedSample(**json.loads(line))
                if stage is None or entry.stage == stage:
                    out.append(entry)
        return out

    def setup_records(self) -> list[SkippedSample]:
        """Files left out at setup (each once)."""
        return self.records(stage=SETUP_STAGE)

    def clear(self) -> None:
        """Forget every record (e.g. between independent runs with one DataModule)."""
        shutil.rmtree(self.directory, ignore_errors=True)
        self._setup_files.clear()


def _complete_lines(path: Path) -> list[str]:
    # A line still being written by a worker has no newline yet; it is read next time.
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    return [line for line in lines[:-1] if line]


def _remove_if_owner(directory: str, owner_pid: int) -> None:
    if os.getpid() == owner_pid:
        shutil.rmtree(directory, ignore_errors=True)


class IndexedFiles:
    """``index -> file name`` for error messages: ``files[index % len(files)]`` (datasets that
    repeat their files several times per epoch use the modulo). Picklable, unlike a lambda."""

    def __init__(self, files: Sequence[str | os.PathLike]) -> None:
        self.files = [str(f) for f in files]

    def __call__(self, index: int) -> str:
        return self.files[index % len(self.files)]


class BadSampleGuard(Dataset):
    """``dataset`` whose bad samples become :class:`SkippedSample` markers (``on_bad_sample: skip``).

    Args:
        dataset: a map-style dataset that reads a file in ``__getitem__``.
        ledger: where each skip is recorded.
        stage: the loader's stage (``train``, ``val``, ``test``, ``predict``).
        origin: ``index -> file`` for the records; None names the sample ``<Dataset>[index]``
            (the reason, the reader's message, names the file anyway).

    Other attributes (``reseed`` of the ASL-DVS datasets, ``records`` ...) are the dataset's.
    """

    def __init__(
        self,
        dataset: Dataset,
        ledger: BadSampleLedger,
        stage: str,
        origin: Callable[[int], str] | None = None,
    ) -> None:
        self.dataset, self.ledger, self.stage, self.origin = dataset, ledger, stage, origin

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes missing here; dunders and our own fields are never
        # forwarded (unpickling looks them up before __dict__ is filled).
        if name.startswith("__") or name in ("dataset", "ledger", "stage", "origin"):
            raise AttributeError(name)
        return getattr(self.__dict__["dataset"], name)

    def __getitem__(self, index: int) -> Any:
        try:
            return self.dataset[index]
        except BAD_SAMPLE_ERRORS as error:
            if self.origin is not None:
                file = self.origin(index)
            else:
                file = f"{type(self.dataset).__name__}[{index}]"
            reason = f"{type(error).__name__}: {error}"
            log.warning("on_bad_sample=skip: skipping %s (%s sample %d): %s", file, self.stage, index, reason)
            return self.ledger.record(self.stage, file, reason, index)

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        """A batch through the dataset's own ``__getitems__`` (batched reading) when it has one;
        a batch with a bad sample is fetched again sample by sample, so only that one is skipped."""
        fetch_batch = getattr(self.dataset, "__getitems__", None)
        if fetch_batch is not None:
            try:
                return fetch_batch(indices)
            except BAD_SAMPLE_ERRORS as error:
                # the per-sample fetch below names the bad sample and applies the policy to it alone
                log.debug("%s: batched fetch failed (%s); fetching its samples one by one", self.stage, error)
        return [self[index] for index in indices]


class DropBadSamples:
    """Collate wrapper: leaves :class:`SkippedSample` markers out, then calls ``collate_fn``.

    Raises:
        AllSamplesBadError: every sample of the batch was bad (the files are named).
    """

    def __init__(self, collate_fn: Callable[[list[Any]], Any]) -> None:
        self.collate_fn = collate_fn

    def __call__(self, samples: Sequence[Any]) -> Any:
        good = [s for s in samples if not isinstance(s, SkippedSample)]
        if not good:
            files = sorted({s.file for s in samples})
            raise AllSamplesBadError(
                f"on_bad_sample=skip: all {len(samples)} sample(s) of a batch are bad, so there is no batch "
                f"to return; bad file(s): {files}. Repair or remove these files (or raise data.batch_size)"
            )
        return self.collate_fn(good)


def guard_loader(
    dataset: Dataset,
    collate_fn: Callable[[list[Any]], Any],
    policy: BadSamplePolicy,
    ledger: BadSampleLedger,
    stage: str,
    origin: Callable[[int], str] | None = None,
) -> tuple[Dataset, Callable[[list[Any]], Any]]:
    """The dataset and collate function a loader should use under ``policy``.

    ``raise`` returns both unchanged (the behaviour without the option); ``skip`` wraps them in
    :class:`BadSampleGuard` and :class:`DropBadSamples`. Sample order and batch format are kept.
    """
    if check_bad_sample_policy(policy) == "raise":
        return dataset, collate_fn
    return BadSampleGuard(dataset, ledger, stage, origin), DropBadSamples(collate_fn)


def record_setup_skips(
    ledger: BadSampleLedger | None, name: str, skipped: Sequence[tuple[str | os.PathLike, str]]
) -> None:
    """Record files left out while building ``name`` (``(file, reason)`` pairs) and warn once
    with their list; files already recorded are not counted again (``ledger=None``: warn only)."""
    new = [(str(f), reason) for f, reason in skipped if ledger is None or ledger.record_setup(f, reason)]
    if not new:
        return
    listing = "; ".join(f"{file}: {reason}" for file, reason in new)
    message = f"on_bad_sample=skip: {name}: left out {len(new)} bad file(s): {listing}"
    log.warning(message)
    warnings.warn(message, BadSampleWarning, stacklevel=3)
