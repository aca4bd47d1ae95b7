"""No pose training or validation step waits on the host: HostSyncGuard around real fits.

Each pose model fits two batches and validates two under :class:`HostSyncGuard`, with the
per-step hooks of the energy monitor and the skeleton figures active; the guard raises on any
``item`` / ``bool`` / ``cpu`` / boolean mask / host-built tensor inside a step or hook. The
sequence models validate stacked camera views, so the 3D triangulation runs in the step too.
The batch transfer (sparse counts made dense on the device) is checked on its own.
"""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch
from lightning_utilities.core.apply_func import apply_to_collection
from pytorch_lightning.loggers import TensorBoardLogger

from event_lightning.callbacks.energy import SpikeEnergyMonitor
from event_lightning.callbacks.host_sync import HostSyncGuard, forbid_host_syncs
from event_lightning.callbacks.pose_figures import PoseOverlayLogger
from event_lightning.data.datasets.dhp19 import SyntheticDHP19DataModule
from event_lightning.data.datasets.dhp19.batches import densify_counts
from event_lightning.models.pose import PoseCNN, PoseHybridCNNRNN, PoseHybridCNNSNN, PoseRNN, PoseSNN
from event_lightning.nn.pose import PoseUNetCNN

DATA = dict(
    subjects=[1, 13],
    duration_ms=600,
    synthetic_cameras=[2, 3],
    cnn_event_count=1500,
    downsample=8,
    train_subjects=[1],
    val_subjects=[13],
    window_ms=30,
    step_ms=50,
    batch_size=2,
    eval_batch_size=2,
)
MODES = {"cnn": "cnn", "snn": "sequence", "rnn": "sequence", "hybrid_cnn_snn": "hybrid", "hybrid_cnn_rnn": "hybrid"}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, single_thread):
    root = str(tmp_path_factory.mktemp("pose_host_syncs"))
    SyntheticDHP19DataModule(root=root, **DATA).prepare_data()
    return root


@pytest.fixture(scope="module")
def cnn_checkpoint(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("pose_cnn") / "cnn.pt"
    torch.save(PoseUNetCNN(20, 13, 4).state_dict(), path)
    return str(path)


def _model(kind: str, cnn_checkpoint: str) -> pl.LightningModule:
    hybrid = dict(cnn_checkpoint=cnn_checkpoint, cnn_base_channels=4, base_channels=4)
    return {
        "cnn": lambda: PoseCNN(base_channels=4),
        "snn": lambda: PoseSNN(base_channels=4),
        "rnn": lambda: PoseRNN(base_channels=4),
        "hybrid_cnn_snn": lambda: PoseHybridCNNSNN(**hybrid),
        "hybrid_cnn_rnn": lambda: PoseHybridCNNRNN(**hybrid),
    }[kind]()


def _data(root: str, kind: str) -> SyntheticDHP19DataModule:
    views = {"camera_views": [3]} if kind == "cnn" else {"camera_views": [2, 3], "stack_test_views": True}
    return SyntheticDHP19DataModule(root=root, mode=MODES[kind], **views, **DATA)


@pytest.mark.parametrize("kind", list(MODES))
def test_steps_and_their_hooks_never_wait_on_the_host(kind, data_root, cnn_checkpoint, tmp_path):
    torch.manual_seed(0)
    monitor = SpikeEnergyMonitor(stages=["train", "val"])
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=2,
        limit_val_batches=2,
        num_sanity_val_steps=0,
        accelerator="cpu",
        logger=TensorBoardLogger(str(tmp_path), name="host_syncs"),
        callbacks=[HostSyncGuard(check_steps=2), monitor, PoseOverlayLogger(n_samples=1)],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(_model(kind, cnn_checkpoint), datamodule=_data(data_root, kind))
    metrics = trainer.callback_metrics
    assert trainer.global_step == 2 and "val/mpjpe" in metrics and "train/mpjpe" in metrics
    assert metrics["val/power_w"] > 0 and monitor.last["train"]["power_w"] > 0
    if kind != "cnn":
        assert "val/mpjpe_3d" in metrics  # stacked views were triangulated inside the step


@pytest.mark.parametrize("mode", ["cnn", "sequence", "hybrid"])
def test_counts_become_dense_on_the_device_without_host_tables(mode, data_root):
    """On the meta device (no data, the device code path): no host read, no host-built table."""
    dm = SyntheticDHP19DataModule(root=data_root, mode=mode, camera_views=[3], **DATA)
    dm.setup("fit")
    batch = apply_to_collection(next(iter(dm.train_dataloader())), torch.Tensor, lambda t: t.to("meta"))
    with forbid_host_syncs("densify_counts"):
        dense = densify_counts(batch)
    frames = dense["cnn_input" if mode == "cnn" else "events"]
    assert frames.device.type == "meta" and frames.dtype == torch.float32
