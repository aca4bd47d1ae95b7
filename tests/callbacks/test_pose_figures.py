"""PoseOverlayLogger: predicted and labelled skeletons of the pose models in TensorBoard."""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from event_lightning.callbacks.pose_figures import PoseOverlayLogger
from event_lightning.data.datasets.dhp19 import DHP19DataModule
from event_lightning.models.pose import PoseCNN, PoseSNN


@pytest.fixture(scope="module")
def root(dhp19_two_cameras):
    return dhp19_two_cameras("dhp19_overlay")


def _images(log_dir) -> dict[str, list[np.ndarray]]:
    import io

    from PIL import Image

    accumulator = EventAccumulator(str(log_dir), size_guidance={"images": 0})
    accumulator.Reload()
    return {
        tag: [
            np.asarray(Image.open(io.BytesIO(event.encoded_image_string)).convert("RGB"))
            for event in accumulator.Images(tag)
        ]
        for tag in accumulator.Tags()["images"]
    }


def _has_colour(image: np.ndarray, rgb: tuple[int, int, int], tolerance: int = 40) -> bool:
    return bool((np.abs(image.astype(int) - np.array(rgb)).max(-1) <= tolerance).any())


@pytest.mark.parametrize("mode", ["cnn", "sequence"])
def test_overlays_of_prediction_and_label_are_logged(root, tmp_path, mode):
    torch.manual_seed(0)
    views = {"camera_views": [2, 3], "stack_test_views": True} if mode == "sequence" else {"camera_views": [3]}
    data = DHP19DataModule(
        root=str(root),
        mode=mode,
        cnn_event_count=1500,
        train_subjects=[1],
        val_subjects=[13],
        test_subjects=[13],
        batch_size=2,
        eval_batch_size=2,
        **views,
    )
    model = (
        PoseCNN(in_channels=20, n_joints=13, base_channels=4)
        if mode == "cnn"
        else PoseSNN(n_joints=13, base_channels=4)
    )
    logger = TensorBoardLogger(str(tmp_path), name="overlay")
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=logger,
        callbacks=[PoseOverlayLogger(n_samples=2)],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=data)
    images = _images(logger.log_dir)
    assert sorted(images) == ["val/pose/sample_0", "val/pose/sample_1"]
    for (image,) in images.values():
        assert image.std() > 5 and len(np.unique(image.reshape(-1, 3), axis=0)) >= 8
        assert _has_colour(image, (0x00, 0xE0, 0x00)) and _has_colour(image, (0xFF, 0x00, 0xFF))


def test_a_batch_that_is_not_a_pose_batch_is_named(tmp_path):
    callback = PoseOverlayLogger()

    class Writer:
        def add_image(self, *args, **kwargs):
            raise AssertionError("nothing should be logged")

    callback._writer = lambda trainer: Writer()  # a logging epoch, without a Trainer
    callback.on_validation_batch_end(None, None, None, {"frames": torch.zeros(1)}, 0)  # held for the epoch end
    with pytest.raises(ValueError, match="expected a DHP19 batch.*frames"):
        callback.on_validation_epoch_end(None, None)
    with pytest.raises(ValueError, match="n_samples must be >= 1"):
        PoseOverlayLogger(n_samples=0)
