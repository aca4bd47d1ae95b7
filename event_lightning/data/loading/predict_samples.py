"""Which sample each row of ``predict`` is: the protocol between the DataModules and the predictions file.

A DataModule says what its predict loader serves with ``predict_samples() -> PredictSamples``: the
split's name and, where every sample comes from one file, that file per dataset index (a window
names the recording it is cut from). :class:`~event_lightning.callbacks.predictions.PredictionFileWriter`
writes them next to the predictions, with the dataset index Lightning's predict loop reports for
every row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["PredictSamples", "sample_columns"]


@dataclass(frozen=True)
class PredictSamples:
    """What a predict loader's samples are.

    Attributes:
        split: the split the loader serves (``"test"``, ``"val"``).
        files: the file of each dataset index, as :class:`~event_lightning.data.loading.bad_samples.IndexedFiles`
            reads them (``files[index % len(files)]``, for datasets that pass over their files
            several times); None when samples are not files (generated sequences).
    """

    split: str
    files: Sequence[str] | None = None


def sample_columns(indices: Sequence[int], samples: PredictSamples) -> dict[str, np.ndarray]:
    """``sample_index [N]`` (int64), ``sample_split [N]`` and, with files, ``sample_file [N]`` (str)."""
    index = np.asarray(indices, dtype=np.int64).reshape(-1)
    columns = {"sample_index": index, "sample_split": np.full(len(index), samples.split)}
    if samples.files:
        files = np.asarray([str(f) for f in samples.files])
        columns["sample_file"] = files[index % len(files)]
    return columns
