"""Classifier figures: the confusion matrix counted on the device, input rows named by label and prediction."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from pytorch_lightning.loggers import TensorBoardLogger
from sklearn.metrics import confusion_matrix
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader, TensorDataset

from event_lightning.callbacks.host_sync import HostSyncGuard
from event_lightning.callbacks.tensorboard_figures import ConfusionMatrixLogger, InputFigureLogger
from event_lightning.callbacks.tensorboard_figures import confusion as confusion_module
from event_lightning.callbacks.tensorboard_figures.classes import batch_labels, class_predictions
from event_lightning.callbacks.tensorboard_figures.confusion import add_to_confusion
from event_lightning.data.loading.event_samplers import EventBatch
from event_lightning.viz import plot_confusion_matrix
from event_lightning.viz.canvas_figures import confusion_matrix_canvas

N_CLASSES = 3


class _Classifier(pl.LightningModule):
    """Frames [T, B, P, H, W] -> scores [B, 3] through self(...), as the package's classifiers."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2 * 6 * 6, N_CLASSES)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.layer(frames.sum(0).flatten(1))

    def training_step(self, batch, batch_idx):
        frames, labels = batch
        return torch.nn.functional.cross_entropy(self(frames), labels)

    def validation_step(self, batch, batch_idx):
        frames, labels = batch
        self.log("val/loss", torch.nn.functional.cross_entropy(self(frames), labels))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _collate(samples):
    frames = torch.stack([s[0] for s in samples], 1)  # time-first, as the frame collates
    return frames, torch.stack([s[1] for s in samples])


def _loader() -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    frames = torch.poisson(torch.full((14, 4, 2, 6, 6), 1.0), generator=generator)
    labels = torch.arange(14) % N_CLASSES
    return DataLoader(TensorDataset(frames, labels), batch_size=4, collate_fn=_collate)


def _images(log_dir: str) -> dict[str, list]:
    accumulator = EventAccumulator(log_dir, size_guidance={"images": 0})
    accumulator.Reload()
    return {tag: accumulator.Images(tag) for tag in accumulator.Tags()["images"]}


def test_counts_match_sklearn():
    generator = torch.Generator().manual_seed(3)
    labels = torch.randint(0, 5, (200,), generator=generator)
    predictions = torch.randint(0, 5, (200,), generator=generator)
    counts = torch.zeros(25, dtype=torch.long)
    for part in range(0, 200, 64):  # batch by batch, as the callback adds them
        add_to_confusion(counts, labels[part : part + 64], predictions[part : part + 64])
    np.testing.assert_array_equal(counts.view(5, 5).numpy(), confusion_matrix(labels, predictions, labels=range(5)))


def test_labels_and_predictions_are_found_in_each_batch_kind():
    labels = torch.tensor([2, 0, 1])
    tokens = EventBatch(*(torch.zeros(3, 4) for _ in range(5)), label=labels)
    assert batch_labels((torch.zeros(5, 3, 2), torch.ones(3), labels)) is labels
    assert batch_labels({"frames": torch.zeros(5, 3), "target": labels}) is labels
    assert batch_labels(tokens) is labels
    assert batch_labels({"events": torch.zeros(3, 2), "landmarks": torch.zeros(3, 13, 2)}) is None
    assert batch_labels((torch.zeros(3, 4), torch.zeros(3))) is None  # float last element: not labels
    scores = torch.tensor([[0.1, 0.2, 0.9], [0.8, 0.1, 0.1], [0.0, 0.3, 0.2]])
    assert class_predictions(scores, labels).tolist() == [2, 0, 1]
    assert class_predictions(scores, labels[:2]) is None
    assert class_predictions(torch.zeros(3, 4, 4), labels) is None


def test_confusion_matrix_figure_names_accuracy_and_counts():
    counts = np.array([[3, 1], [0, 4]])
    fig = plot_confusion_matrix(counts, class_names=["cat", "dog"], title="epoch 0")
    ax = fig.axes[0]
    assert ax.get_title() == "epoch 0: accuracy 0.875 on 8 samples"
    texts = [t.get_text() for t in ax.texts]
    assert sorted(t for t in texts if t.isdigit()) == ["1", "3", "4"]  # empty cells stay blank
    assert sorted(t for t in texts if not t.isdigit()) == ["cat", "cat", "dog", "dog"]  # below and beside
    with pytest.raises(ValueError, match=r"expected counts \[C, C\]"):
        plot_confusion_matrix(np.zeros((2, 3)))


def test_confusion_matrix_canvas_names_accuracy_counts_and_colours_rows_by_share():
    counts = np.array([[3, 1], [0, 4]])
    canvas = confusion_matrix_canvas(counts, class_names=["cat", "dog"], title="epoch 0")
    assert canvas.texts[0] == "epoch 0: accuracy 0.875 on 8 samples"
    assert sorted(t for t in canvas.texts if t.isdigit()) == ["1", "3", "4"]  # empty cells stay blank
    assert sorted(t for t in canvas.texts if t in ("cat", "dog")) == ["cat", "cat", "dog", "dog"]  # above and beside
    # cell colours: darker (lower red channel) with the row's share; row 1's empty cell is white
    blues = {tuple(int(v) for v in rgb) for rgb in canvas.pixels.reshape(-1, 3)}
    expected = [
        tuple(int(v) for v in np.round(np.asarray(matplotlib.colormaps["Blues"](share))[:3] * 255))
        for share in (0.0, 0.25, 0.75, 1.0)
    ]
    assert set(expected) <= blues
    # many classes: columns numbered (every m-th), rows say which name each number is, no counts
    many = confusion_matrix_canvas(np.eye(30, dtype=int), class_names=[f"class {k}" for k in range(30)])
    assert "0: class 0" in many.texts and "29: class 29" in many.texts
    assert "1 " not in many.texts and len([t for t in many.texts if t.isdigit()]) < 30
    with pytest.raises(ValueError, match=r"expected counts \[C, C\]"):
        confusion_matrix_canvas(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="1 class names for 2 classes"):
        confusion_matrix_canvas(counts, class_names=["cat"])


def test_classifier_figures_log_every_validation_sample_without_host_syncs(tmp_path, monkeypatch):
    drawn: list[np.ndarray] = []

    def keep(counts, **kwargs):
        drawn.append(np.asarray(counts))
        return confusion_matrix_canvas(counts, **kwargs)

    monkeypatch.setattr(confusion_module, "confusion_matrix_canvas", keep)
    model = _Classifier()
    callbacks = [ConfusionMatrixLogger(), InputFigureLogger(max_panels=2), HostSyncGuard(check_steps=100)]
    trainer = pl.Trainer(
        max_epochs=2,
        limit_train_batches=1,
        logger=TensorBoardLogger(tmp_path, name="cls"),
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, _loader(), _loader())
    images = _images(trainer.log_dir)
    # a fit of seconds draws on its last epoch only (the figure budget's early drawing needs a minute)
    assert {tag: len(logged) for tag, logged in images.items()} == {"val/confusion_matrix": 1, "val/input": 1}
    # the last epoch's matrix counts every one of the 14 validation samples against its prediction
    frames, labels = next(iter(DataLoader(_loader().dataset, batch_size=14, collate_fn=_collate)))
    with torch.no_grad():
        predictions = model(frames).argmax(-1)
    np.testing.assert_array_equal(drawn[-1], confusion_matrix(labels, predictions, labels=range(N_CLASSES)))
    image = np.asarray(Image.open(io.BytesIO(images["val/input"][-1].encoded_image_string)))
    assert image.std() > 5.0
    assert callbacks[0]._scores._handle is None and callbacks[1]._scores._handle is None  # no hook left behind


def test_a_model_without_class_scores_warns_once(tmp_path):
    class _Regressor(_Classifier):
        def forward(self, frames):
            return super().forward(frames)[:, :, None]  # [B, 3, 1]: not class scores

        def training_step(self, batch, batch_idx):
            return self(batch[0]).square().mean()

        def validation_step(self, batch, batch_idx):
            self.log("val/loss", self(batch[0]).square().mean())

    trainer = pl.Trainer(
        max_epochs=2,
        limit_train_batches=1,
        logger=TensorBoardLogger(tmp_path, name="reg"),
        callbacks=[ConfusionMatrixLogger()],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(_Regressor(), _loader(), _loader())
    assert len([w for w in caught if "did not return class scores" in str(w.message)]) == 1
    assert _images(str(Path(trainer.log_dir))) == {}
