"""DVSGesture for the Hybrid Guided VAE: 32x32 count frames of 1-ms bins, random 200-step windows.

Used by ``config/hgvae_dvsgesture.yaml`` and ``config/hgvae_dvsgesture_lighting.yaml`` (the real
set) and their ``*_synthetic.yaml`` twins (the stand-in of
:mod:`event_lightning.data.standins.dvsgesture`).

Following the HG-VAE reference loader (torchneuromorphic's DVSGesture): users 1-23 train, 24-29
test (tonic's split), "Other gestures" (label 10) dropped, coordinates divided by 4 (128 -> 32,
i.e. 4x4 sum pooling), events counted in ``dt_us`` bins from the first event. A window of
``n_time_steps`` bins starts uniformly in ``[0, n_bins - start_limit * n_time_steps]`` for train
AND test (re-drawn every epoch). The whole recording's frames are built once per file and cached on
disk (:class:`~event_lightning.data.loading.frame_cache.FrameCache`); the window is cut after the cache
(:mod:`event_lightning.data.loading.windows`, the loader this module shares with N-MNIST's HG-VAE data).

Batches are dicts: ``frames [T, B, 2, 32, 32]`` counts (time-first; uint8, int16 when a bin holds
more than 255 events: the model converts them to float on the device), ``target [B]`` (the
class the model's guide learns: the gesture, or the lighting with ``target: light``), ``label``
(gesture), ``light`` (index into :data:`LIGHTING_CONDITIONS`) and ``user`` [B] int64.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset

from event_lightning.data.loading.bad_samples import BadSampleLedger, BadSamplePolicy, check_bad_sample_policy
from event_lightning.data.loading.config_checks import check_window_fits, first_measurable
from event_lightning.data.loading.frame_cache import FrameCache
from event_lightning.data.loading.loaders import LoaderSettings
from event_lightning.data.loading.missing_data import DatasetSource, dataset_not_found, downloading
from event_lightning.data.loading.predict_samples import PredictSamples
from event_lightning.data.loading.sample_transforms import SampleTransform, StageTransforms
from event_lightning.data.loading.windows import (
    crop_window,
    evaluation_order_files,
    frames_to_float,
    window_loader,
    window_start,
)
from event_lightning.data.standins.dvsgesture import (
    SyntheticGesturesConfig,
    ensure_synthetic_gestures,
    synthetic_gestures_folder,
)
from event_lightning.events import augment
from event_lightning.events.core import SensorSize
from event_lightning.events.formats.dvsgesture_npy import (
    DVSGESTURE_OTHER_LABEL,
    DVSGESTURE_SENSOR_SIZE,
    DVSGestureRecord,
    dvsgesture_split_dir,
    list_dvsgesture_split,
    read_dvsgesture_npy,
)
from event_lightning.events.represent.frames import to_frame

__all__ = ["DVSGestureDataModule", "GestureWindowDataset", "LIGHTING_CONDITIONS", "lighting_index"]

log = logging.getLogger(__name__)

LIGHTING_CONDITIONS = ("led", "lab", "natural", "fluorescent")
"""The four lighting classes of the lighting variant ("fluorescent_led" counts as fluorescent), in the
reference's order (``light_map`` of its ``train_lights.py``), so per-class results map 1:1."""
FRAMES_CODE_VERSION = "dvsgesture-frames-1"
DVSGESTURE_SOURCE = DatasetSource(
    "DVSGesture",
    "<root>/DVSGesture/ibmGestureTrain/user<NN>_<lighting>/<label>.npy and <root>/DVSGesture/ibmGestureTest/"
    "(the layout tonic extracts)",
    "with data.download: true tonic.datasets.DVSGesture downloads ibmGestureTrain.tar.gz and ibmGestureTest.tar.gz "
    "from figshare (figshare.com/ndownloader/files/38022171 and 38020584) and extracts them into <root>/DVSGesture "
    "(needs the network); offline, download them on another machine and extract them there",
    "--data.init_args.synthetic true, or config/hgvae_dvsgesture_synthetic.yaml",
)


def lighting_index(token: str, origin: str | os.PathLike = "DVSGesture") -> int:
    """Index of a folder's lighting token in :data:`LIGHTING_CONDITIONS`.

    "fluorescent_led" collapses into "fluorescent", as in the reference loader.
    """
    name = "fluorescent" if token == "fluorescent_led" else token
    if name not in LIGHTING_CONDITIONS:
        raise ValueError(f"{origin}: unknown lighting condition {token!r}; expected one of {LIGHTING_CONDITIONS}")
    return LIGHTING_CONDITIONS.index(name)


def recording_frames(
    path: str | os.PathLike,
    downsample: int,
    dt_us: int,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """All of one recording as int16 count frames ``(N, 2, 128 // ds, 128 // ds)``.

    Bins of ``dt_us`` from the recording's first event (tonic ToFrame windows). ``transform``
    (events -> events on the downsampled sensor) runs between downsampling and framing.
    """
    events = read_dvsgesture_npy(path, allow_empty=True)
    side = DVSGESTURE_SENSOR_SIZE.width // downsample
    events, sensor = augment.downsample(events, DVSGESTURE_SENSOR_SIZE, target_size=(side, side))
    if transform is not None:
        events = transform(events)
    return to_frame(events, sensor, time_window=dt_us, include_incomplete=True)


class GestureWindowDataset(Dataset):
    """Fixed-length windows of cached per-recording frames, with label, lighting and user.

    Args:
        records: the recordings (``Other`` already removed if wanted).
        cache: where frames of record ``i`` are cached (``None``: rebuilt at every access).
        target: ``"gesture"`` or ``"light"``: what ``target`` holds.

    ``transform`` (a :class:`SampleTransform`, set per stage by :class:`StageTransforms`) runs on
    each recording's downsampled events before framing; the window is drawn after it.
    """

    def __init__(
        self,
        records: Sequence[DVSGestureRecord],
        *,
        downsample: int,
        dt_us: int,
        n_time_steps: int,
        random_window: bool,
        start_limit: float,
        target: str,
        cache: FrameCache | None,
    ) -> None:
        self.records = list(records)
        self.downsample, self.dt_us, self.n_time_steps = downsample, dt_us, n_time_steps
        self.random_window, self.start_limit, self.target = random_window, start_limit, target
        self.cache = cache
        self.transform: SampleTransform | None = None
        self.lights = np.array([lighting_index(r.lighting, r.path) for r in self.records], dtype=np.int64)

    def __len__(self) -> int:
        return len(self.records)

    def frames(self, index: int) -> np.ndarray:
        """All frames of recording ``index`` ``(N, 2, H, W)`` (memory-mapped when cached)."""
        path = self.records[index].path
        transform = None if self.transform is None else functools.partial(self.transform, index=index, origin=str(path))
        build = lambda: recording_frames(path, self.downsample, self.dt_us, transform)  # noqa: E731
        return build() if self.cache is None else self.cache.load(index, build)

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        frames = self.frames(index)
        start = window_start(len(frames), self.n_time_steps, random=self.random_window, start_limit=self.start_limit)
        label, light = record.label, int(self.lights[index])
        return {
            "frames": crop_window(frames, start, self.n_time_steps),
            "target": np.int64(light if self.target == "light" else label),
            "label": np.int64(label),
            "light": np.int64(light),
            "user": np.int64(record.user),
        }


class DVSGestureDataModule(pl.LightningDataModule):
    """tonic's DVSGesture (or its synthetic stand-in) as HG-VAE windows; validation = test split (as the
    reference), served in a fixed gesture-mixed order.

    Args:
        root: holds ``DVSGesture/ibmGestureTrain`` and ``.../ibmGestureTest`` (tonic's ``save_to``).
        synthetic: write (once) and read the synthetic stand-in instead of the real set, in
            ``root/synthetic-dvsgesture-<key>`` (one folder per ``synthetic_config``).
        synthetic_config: fields of :class:`SyntheticGesturesConfig` for the stand-in.
        download: let tonic download the real set into ``root`` when it is missing.
        target: ``"gesture"`` (10 classes) or ``"light"`` (4 lighting conditions, the lighting variant).
        downsample: spatial division (4: 128 -> 32).
        dt_us: bin width (µs). n_time_steps: bins per window.
        train_random_window / test_random_window: random window start (the reference: both True);
            otherwise windows start at the first bin.
        start_limit: the window starts in ``[0, n_bins - start_limit * n_time_steps]`` (reference: 2).
        drop_other: remove label 10 ("Other gestures").
        cache: cache each recording's frames under ``cache_dir`` (default ``<root>/cache``).
        on_bad_sample: ``raise`` (default) or ``skip`` an unreadable recording: it is dropped from
            its batch and recorded in ``bad_samples`` (see :mod:`event_lightning.data.loading.bad_samples`).
        train_transform, eval_transform: event transforms (``class_path`` entries: this package's
            :mod:`event_lightning.events.augment`, tonic's ``tonic.transforms``, any callable on
            events) for training and for evaluation, on the downsampled sensor. The reference's own
            augmentation (the random window) is kept: the user's transforms run on each recording's
            events first, the window is drawn from the frames after. A stage with transforms frames
            every access instead of reading the frame cache; see
            :mod:`event_lightning.data.loading.sample_transforms`.
    """

    def __init__(
        self,
        root: str = "datasets",
        synthetic: bool = False,
        synthetic_config: dict[str, Any] | None = None,
        download: bool = False,
        target: str = "gesture",
        downsample: int = 4,
        dt_us: int = 1000,
        n_time_steps: int = 200,
        train_random_window: bool = True,
        test_random_window: bool = True,
        start_limit: float = 2.0,
        drop_other: bool = True,
        cache: bool = True,
        cache_dir: str | None = None,
        batch_size: int = 30,
        num_workers: int | Literal["auto"] = "auto",
        pin_memory: bool | Literal["auto"] = "auto",
        on_bad_sample: BadSamplePolicy = "raise",
        train_transform: list[Callable] | None = None,
        eval_transform: list[Callable] | None = None,
    ) -> None:
        super().__init__()
        check_bad_sample_policy(on_bad_sample)
        if target not in ("gesture", "light"):
            raise ValueError(f"data.target must be 'gesture' or 'light', found {target!r}")
        if DVSGESTURE_SENSOR_SIZE.width % downsample:
            raise ValueError(f"data.downsample must divide 128, found {downsample}")
        for name, value in (("dt_us", dt_us), ("n_time_steps", n_time_steps), ("batch_size", batch_size)):
            if value < 1:
                raise ValueError(f"data.{name} must be >= 1, found {value}")
        self.save_hyperparameters(ignore=["train_transform", "eval_transform"])  # objects: kept in config.yaml
        self.loader_settings = LoaderSettings(batch_size, num_workers, pin_memory)
        self.synthetic_config = SyntheticGesturesConfig(**(synthetic_config or {})) if synthetic else None
        self.root = Path(root)
        # the stand-in has a folder per parameters: another run's stand-in is never touched
        self.data_root = synthetic_gestures_folder(root, self.synthetic_config) if synthetic else self.root
        n_gestures = self.synthetic_config.n_classes if synthetic else DVSGESTURE_OTHER_LABEL
        if not drop_other and target == "gesture":
            n_gestures += 1
        # Set here, not in setup: the CLI links them into the model at instantiation.
        self.sensor_size = SensorSize(128 // downsample, 128 // downsample, 2)
        self.transforms = StageTransforms(train_transform, eval_transform, self.sensor_size)
        self.num_classes = len(LIGHTING_CONDITIONS) if target == "light" else n_gestures
        self.n_time_steps = n_time_steps
        self.class_names: list[str] = (
            list(LIGHTING_CONDITIONS) if target == "light" else [str(i) for i in range(n_gestures)]
        )
        self._splits: dict[bool, GestureWindowDataset] = {}
        self.bad_samples = BadSampleLedger()

    def prepare_data(self) -> None:
        if self.synthetic_config is not None:
            ensure_synthetic_gestures(self.data_root, self.synthetic_config)
        elif self.hparams.download:
            import tonic  # deferred: only the real-data path needs it

            with downloading(DVSGESTURE_SOURCE, self.root):
                for train in (True, False):
                    tonic.datasets.DVSGesture(save_to=str(self.root), train=train)

    def _records(self, train: bool) -> list[DVSGestureRecord]:
        split = "train" if train else "test"
        try:
            records = list_dvsgesture_split(self.data_root, train)
        except FileNotFoundError as error:
            if self.synthetic_config is not None:
                raise
            folder = dvsgesture_split_dir(self.data_root, train)
            raise dataset_not_found(DVSGESTURE_SOURCE, self.data_root, folder, f"no {split} split folder") from error
        if self.hparams.drop_other:
            records = [r for r in records if r.label != DVSGESTURE_OTHER_LABEL]
        if not records:
            folder = dvsgesture_split_dir(self.data_root, train)
            raise dataset_not_found(DVSGESTURE_SOURCE, self.data_root, folder, f"no recordings in the {split} split")
        return records

    def split(self, train: bool) -> GestureWindowDataset:
        """The train (``True``) or test (``False``) dataset."""
        if train not in self._splits:
            records = self._records(train)
            h = self.hparams
            cache = None
            if h.cache:
                params = {"downsample": h.downsample, "dt_us": h.dt_us, "layout": "T,P,H,W"}
                cache = FrameCache(
                    h.cache_dir or self.root / "cache",
                    f"dvsgesture-{'train' if train else 'test'}",
                    files=[r.path for r in records],
                    params=params,
                    code_version=FRAMES_CODE_VERSION,
                )
            self._splits[train] = GestureWindowDataset(
                records,
                downsample=h.downsample,
                dt_us=h.dt_us,
                n_time_steps=h.n_time_steps,
                random_window=h.train_random_window if train else h.test_random_window,
                start_limit=h.start_limit,
                target=h.target,
                cache=cache,
            )
            log.info("DVSGesture %s: %d recordings", "train" if train else "test", len(records))
        return self._splits[train]

    def setup(self, stage: str) -> None:
        if self.synthetic_config is not None:
            ensure_synthetic_gestures(self.data_root, self.synthetic_config)  # no-op when prepare_data wrote it
        if stage == "fit":
            self.split(True)
        self.split(False)
        records = self.split(stage == "fit").records
        first = first_measurable(lambda i: (read_dvsgesture_npy(records[i].path), str(records[i].path)), len(records))
        if first is not None:
            h = self.hparams
            check_window_fits(first[0], h.dt_us, h.n_time_steps, first[1], from_zero=False)

    def _loader(self, train: bool, shuffle: bool, stage: str) -> DataLoader:
        split = self.transforms.staged(self.split(train), stage)
        files = [str(r.path) for r in split.records]
        labels = [r.label for r in split.records]
        options = {"on_bad_sample": self.hparams.on_bad_sample, "bad_samples": self.bad_samples, "stage": stage}
        options |= {"epoch_counter": self.transforms.epoch, "shuffle": shuffle, "files": files, "labels": labels}
        return window_loader(split, self.loader_settings, self.trainer, train=train, **options)

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        return frames_to_float(batch)

    def train_dataloader(self) -> DataLoader:
        return self._loader(True, shuffle=True, stage="train")

    def val_dataloader(self) -> DataLoader:
        return self._loader(False, shuffle=False, stage="val")

    def test_dataloader(self) -> DataLoader:
        return self._loader(False, shuffle=False, stage="test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader(False, shuffle=False, stage="predict")

    def predict_samples(self) -> PredictSamples:
        """Predict serves the test split in class-mixed order, one window of one recording per sample."""
        records = self.split(False).records
        return PredictSamples(
            "test", evaluation_order_files([str(r.path) for r in records], [r.label for r in records])
        )
