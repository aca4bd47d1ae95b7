"""Issue #17 (Reliability II), items 6, 8, 10 and 11 through the DataModules and the entrypoint.

* 6: DHP19 files that crashed an ``on_bad_sample: skip`` run without naming themselves (a scalar
  ``cam3_events/x``, a 1e10-long ``cam3_ms_to_idx``, a 3e9-long ``t``, NaN label timestamps, a
  corrupt ``P*.npy``) raise :class:`EventFormatError` naming the file and the field, in bounded
  memory and time; ``skip`` leaves the recording out with a count.
* 8: a first training file holding only N-MNIST overflow markers is a bad file, not a reason to
  blame ``data.time_window``.
* 10: every real-data DataModule, with no data and no network, says which dataset, which folder
  was searched, the expected layout, where to get it and how to use the stand-in.
* 11: all-NaN poses are a counted skip, reported every epoch.

The readers' own fuzzing (random bytes, truncation, huge declared sizes, bombs, fractional /
complex values) is in ``test_reader_fuzz.py``.
"""

from __future__ import annotations

import re
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers.logger import Logger

from event_lightning.callbacks.bad_samples import BadSampleReporter
from event_lightning.cli import main
from event_lightning.data.datasets.asl_dvs import ASLDVSDataModule
from event_lightning.data.datasets.dhp19 import DHP19DataModule
from event_lightning.data.datasets.dsprites import DSpritesSequenceDataModule
from event_lightning.data.datasets.dvsgesture import DVSGestureDataModule
from event_lightning.data.datasets.mnist import MNISTSequenceDataModule
from event_lightning.data.datasets.nmnist import NMNISTDataModule, NMNISTFramesDataModule
from event_lightning.data.datasets.pokerdvs import PokerDVSDataModule
from event_lightning.data.loading.bad_samples import BadSampleWarning
from event_lightning.data.loading.missing_data import DatasetNotFoundError
from event_lightning.data.standins.dhp19 import SyntheticDHP19Config, write_synthetic_dhp19
from event_lightning.events.core import EventFormatError

DHP19 = SyntheticDHP19Config(subjects=(1, 13), duration_ms=300, cameras=(3,), seed=3)
DHP19_SETTINGS = {"camera_views": [3], "cnn_event_count": 500, "train_subjects": [1], "test_subjects": [13, 16]}
BAD_STEM = "S16_session1_mov1"


@pytest.fixture(scope="module")
def dhp19_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dhp19")
    write_synthetic_dhp19(root, DHP19)
    return root


def _dhp19_copy(dhp19_root: Path, tmp_path: Path) -> Path:
    """The stand-in plus recording S16, a copy of S13 (a test subject) for the tests to break."""
    root = tmp_path / "dhp19"
    shutil.copytree(dhp19_root, root)
    for suffix in ("events", "label"):
        shutil.copy(root / f"S13_session1_mov1_{suffix}.h5", root / f"{BAD_STEM}_{suffix}.h5")
    return root


def _replace(path: Path, key: str, **dataset) -> None:
    with h5py.File(path, "a") as f:
        del f[key]
        f.create_dataset(key, **dataset)


def _scalar_x(root: Path) -> None:
    _replace(root / f"{BAD_STEM}_events.h5", "cam3_events/x", data=np.int16(5))


def _long_table(root: Path) -> None:
    _replace(root / f"{BAD_STEM}_events.h5", "cam3_ms_to_idx", shape=(10**10,), dtype=np.int64, chunks=(1 << 16,))


def _long_t(root: Path) -> None:
    for name in ("x", "y", "p", "t"):
        path = root / f"{BAD_STEM}_events.h5"
        with h5py.File(path, "r") as f:
            dtype = f[f"cam3_events/{name}"].dtype
        _replace(path, f"cam3_events/{name}", shape=(3 * 10**9,), dtype=dtype, chunks=(1 << 16,))


def _nan_timestamps(root: Path) -> None:
    path = root / f"{BAD_STEM}_label.h5"
    with h5py.File(path, "r") as f:
        stamps = f["XYZ/timestamps"][:].astype(np.float64)
    stamps[3] = np.nan
    _replace(path, "XYZ/timestamps", data=stamps)


@pytest.mark.parametrize(
    ("breaks", "file", "field"),
    [
        (_scalar_x, "events", "cam3_events/x"),
        (_long_table, "events", "cam3_ms_to_idx"),
        (_long_t, "events", "cam3_events/x"),  # every field declares 3e9 events; x is checked first
        (_nan_timestamps, "label", "XYZ/timestamps"),
    ],
)
def test_dhp19_file_is_named_with_its_field_and_skipped_with_a_count(
    dhp19_root, tmp_path, bounded_read, breaks, file, field
):
    root = _dhp19_copy(dhp19_root, tmp_path)
    breaks(root)
    bad = root / f"{BAD_STEM}_{file}.h5"

    def split(policy: str) -> Callable[[Path], object]:
        return lambda _: DHP19DataModule(root=str(root), on_bad_sample=policy, **DHP19_SETTINGS).split("test")

    outcome, error = bounded_read(split("raise"), bad)
    assert outcome == "error" and field in str(error)
    data = DHP19DataModule(root=str(root), on_bad_sample="skip", **DHP19_SETTINGS)
    with pytest.warns(BadSampleWarning, match=rf"left out 1 bad file.*{bad.name}.*{field}"):
        outcome, test = bounded_read(lambda _: data.split("test"), bad)
    assert outcome == "valid" and [s.recording.stem for s in test.sources] == ["S13_session1_mov1"]
    assert [r.file for r in data.bad_samples.setup_records()] == [str(root / f"{BAD_STEM}_events.h5")]


@pytest.mark.parametrize("policy", ["raise", "skip"])
def test_a_corrupt_projection_matrix_is_named(dhp19_root, tmp_path, policy):
    root = _dhp19_copy(dhp19_root, tmp_path)
    (root / "P2.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")  # camera 3 uses P2
    with pytest.raises(EventFormatError, match=r"P2\.npy: .*\.npy"):
        DHP19DataModule(root=str(root), on_bad_sample=policy, **DHP19_SETTINGS).split("test")


class _NoModel(pl.LightningModule):
    """Takes DHP19 batches and learns nothing: the run is about the data's report."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return self.weight.sum() + batch["cnn_input"].sum() * 0

    def validation_step(self, batch, batch_idx):
        self.log("val/zero", self.weight.sum(), batch_size=len(batch["camera"]))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _Metrics(Logger):
    """Keeps every logged metrics dict."""

    def __init__(self) -> None:
        super().__init__()
        self.history: list[dict[str, float]] = []

    @property
    def name(self) -> str:
        return "metrics"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        return None

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.history.append(dict(metrics))


@pytest.mark.parametrize("policy", ["raise", "skip"])
def test_all_nan_poses_are_a_counted_skip_reported_every_epoch(dhp19_root, tmp_path, policy):
    root = _dhp19_copy(dhp19_root, tmp_path)
    path = root / f"{BAD_STEM}_label.h5"
    with h5py.File(path, "r") as f:
        poses = f["XYZ/3d_poses"][:] * np.nan
    _replace(path, "XYZ/3d_poses", data=poses)
    settings = {**DHP19_SETTINGS, "train_subjects": [16], "val_subjects": [13], "test_subjects": [13]}
    data = DHP19DataModule(root=str(root), on_bad_sample=policy, batch_size=2, **settings)
    with pytest.warns(UserWarning, match=rf"windows without labels left out.*{path.name}.*no joint with finite"):
        train = data.split("train")
    assert len(train) == 0 and [r.file for r in data.bad_samples.setup_records()] == [str(path)]
    # A recording with some labels keeps its windows; the run reports the skip at every epoch end.
    data = DHP19DataModule(
        root=str(root), on_bad_sample=policy, batch_size=2, **{**settings, "train_subjects": [1, 16]}
    )
    metrics = _Metrics()
    quiet = {"enable_checkpointing": False, "enable_progress_bar": False, "enable_model_summary": False}
    limits = {"max_epochs": 2, "limit_train_batches": 2, "limit_val_batches": 1, "num_sanity_val_steps": 0}
    trainer = pl.Trainer(callbacks=[BadSampleReporter()], logger=metrics, accelerator="cpu", **limits, **quiet)
    with pytest.warns(BadSampleWarning, match=rf"left out at setup: {re.escape(str(path))}") as caught:
        trainer.fit(_NoModel(), datamodule=data)
    # the report names the skip policy only when the policy was skip
    setup_reports = [str(w.message) for w in caught if "left out at setup" in str(w.message)]
    assert all(message.startswith("on_bad_sample=skip: ") == (policy == "skip") for message in setup_reports)
    reported = {m["epoch"]: m["data/skipped_files_setup"] for m in metrics.history if "data/skipped_files_setup" in m}
    assert reported == {0: 1.0, 1: 1.0}
    stems = {data.split("train").sources[i].recording.stem for i, _, _ in data.split("train").index}
    assert stems == {"S1_session1_mov1"}


# ------------------------------------------------------------- item 8: overflow markers in the first file


def _failure_text(run: Callable[[], object], capsys) -> str:
    """What a failed entrypoint run says: the exception's message, or stderr when it exited non-zero."""
    with pytest.raises(BaseException) as failure:  # noqa: PT011 - either a data error or a usage exit
        run()
    if isinstance(failure.value, SystemExit):
        assert failure.value.code not in (0, None)
        return capsys.readouterr().err
    return str(failure.value)


@pytest.mark.parametrize("policy", ["skip", "raise"])
def test_a_file_of_overflow_markers_is_a_bad_file_not_a_time_window_problem(quick, tmp_path, capsys, policy):
    root = tmp_path / "digits"
    data = NMNISTFramesDataModule(root=str(root), n_train=40, n_test=20, batch_size=10)
    data.setup("fit")
    first = Path(data.sample_files(True)[0])
    markers = np.zeros((20, 5), np.uint8)
    markers[:, 1] = 240  # y = 240: a timestamp-overflow marker, not an event
    first.write_bytes(markers.tobytes())
    args = ["fit", *quick.args(tmp_path / "runs", root, "--data.on_bad_sample", policy, "--trainer.max_epochs", "1")]
    if policy == "skip":
        with pytest.warns(BadSampleWarning, match=rf"skipped 1 sample.*{first.name}.*overflow marker"):
            main(args)
        return
    message = _failure_text(lambda: main(args), capsys)
    assert str(first) in message and "overflow marker" in message and "time_window" not in message


# ------------------------------------------------------------- item 10: the real data is not there


@pytest.fixture
def no_network(monkeypatch):
    """Every URL fetch fails as it does offline (tonic downloads through urllib.request.urlopen)."""

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)


REAL_DATA = {
    "nmnist_frames": (lambda root: NMNISTFramesDataModule(root=root, synthetic=False), "N-MNIST", "Mendeley", True),
    "nmnist": (lambda root: NMNISTDataModule(root=root, download=True), "N-MNIST", "Mendeley", True),
    "nmnist_no_download": (lambda root: NMNISTDataModule(root=root), "N-MNIST", "data.download: true", False),
    "pokerdvs": (lambda root: PokerDVSDataModule(root=root), "POKER-DVS", "pips_train.tar.gz", False),
    "dvsgesture": (lambda root: DVSGestureDataModule(root=root, download=True), "DVSGesture", "figshare", True),
    "dvsgesture_no_download": (lambda root: DVSGestureDataModule(root=root), "DVSGesture", "figshare", False),
    "asl_dvs_mat": (
        lambda root: ASLDVSDataModule(root=root, file_format="mat", download=True),
        "ASL-DVS",
        "Dropbox",
        True,
    ),
    "asl_dvs_npz": (lambda root: ASLDVSDataModule(root=root), "ASL-DVS", "spikingjelly", False),
    "dhp19": (lambda root: DHP19DataModule(root=root), "DHP19", "sites.google.com/view/dhp19", False),
    "mnist": (lambda root: MNISTSequenceDataModule(root=root), "MNIST", "yann.lecun.com", False),
    "dsprites": (lambda root: DSpritesSequenceDataModule(root=root), "dSprites", "github.com/deepmind", False),
}


@pytest.mark.parametrize("name", list(REAL_DATA))
def test_missing_real_data_says_what_where_how_and_the_stand_in(tmp_path, no_network, name):
    make, dataset, where, downloads = REAL_DATA[name]
    root = tmp_path / "empty"
    data = make(str(root))
    with pytest.raises(DatasetNotFoundError) as missing:
        data.prepare_data()
        data.setup("fit")
    message = str(missing.value)
    assert message.startswith(dataset)
    assert f"searched:           {root}" in message  # the folder (or the files in it) it looked in
    assert str(root) in message.split("expected layout:")[1].split("\n")[0]
    assert where in message.split("where to get it:")[1]
    assert "synthetic" in message.split("offline stand-in:")[1].lower()
    assert ("URLError" in message) == downloads  # a failed download says so


def test_quickstart_on_real_data_offline_names_the_dataset_not_a_bare_url_error(quick, tmp_path, capsys, no_network):
    root = tmp_path / "nmnist"
    args = ["fit", *quick.args(tmp_path / "runs", root, "--data.synthetic", "false", "--trainer.max_epochs", "1")]
    message = _failure_text(lambda: main(args), capsys)
    assert "N-MNIST: downloading it into" in message and "URLError" in message
    assert f"{root}/NMNIST/Train/<digit 0-9>/*.bin" in message and "--data.init_args.synthetic true" in message
