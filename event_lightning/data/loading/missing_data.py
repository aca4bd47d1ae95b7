"""What a DataModule says when its real dataset is not on disk, or cannot be downloaded.

A run that cannot find its data must name the dataset, the folder it searched, the layout and
files it expects there, where to get them, and how to train on the offline stand-in instead --
also when tonic's download fails (no network ends in a bare ``URLError: Name or service not
known`` otherwise). Each dataset module describes itself once as a :class:`DatasetSource`; its
DataModule raises :func:`dataset_not_found` and wraps downloads in :func:`downloading`.
"""

from __future__ import annotations

import tarfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DatasetNotFoundError", "DatasetSource", "dataset_not_found", "downloading"]


class DatasetNotFoundError(FileNotFoundError):
    """The real files of a dataset are not where its DataModule looks; the message says what to do."""


@dataclass(frozen=True)
class DatasetSource:
    """How to obtain one dataset. ``<root>`` in the texts is replaced by the DataModule's root.

    Attributes:
        name: the dataset's name ("N-MNIST").
        layout: the files and folders expected under the root.
        get: where to get them (download, manual steps).
        standin: how to train on the offline stand-in instead (flag and config file).
    """

    name: str
    layout: str
    get: str
    standin: str


def dataset_not_found(
    source: DatasetSource, root: str | Path, searched: str | Path, problem: str
) -> DatasetNotFoundError:
    """The error for ``source`` missing under ``root``: ``problem`` found while looking in ``searched``."""
    root = str(root)
    return DatasetNotFoundError(
        f"{source.name}: {problem}\n"
        f"  searched:           {searched}\n"
        f"  expected layout:    {source.layout.replace('<root>', root)}\n"
        f"  where to get it:    {source.get.replace('<root>', root)}\n"
        f"  offline stand-in:   {source.standin}"
    )


@contextmanager
def downloading(source: DatasetSource, root: str | Path) -> Iterator[None]:
    """Run a download (tonic's) into ``root``; a failure -- no network, an HTTP error, a checksum
    mismatch or a broken archive -- becomes a :class:`DatasetNotFoundError` saying what to do."""
    try:
        yield
    except DatasetNotFoundError:
        raise
    except (OSError, RuntimeError, EOFError, zipfile.BadZipFile, tarfile.TarError) as error:
        # URLError, socket and HTTP errors are OSErrors; tonic raises RuntimeError on a bad checksum.
        problem = f"downloading it into {root} failed ({type(error).__name__}: {error})"
        raise dataset_not_found(source, root, root, problem) from error
