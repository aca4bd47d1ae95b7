"""Generic TensorBoard figure callbacks: from a config through the real CLI, and at the Python level."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image
from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch.utils.data import DataLoader, TensorDataset

from event_lightning.callbacks.tensorboard_figures import (
    InputFigureLogger,
    RasterSelection,
    SpikeRasterLogger,
    input_canvas,
    select_output,
    spike_raster_canvases,
)
from event_lightning.cli import main
from event_lightning.data.loading.event_samplers import EventBatch
from event_lightning.nn.pose.snn_unet import SNNOutput, SpikingPoseUNet

REPO = Path(__file__).resolve().parents[2]
FIGURES_CONFIG = str(REPO / "config" / "lif_pokerdvs_synthetic_figures.yaml")
QUIET = ["--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


def _images(log_dir: Path) -> dict[str, list[np.ndarray]]:
    """Every image tag of a TensorBoard run, decoded to uint8 [H, W, 3] arrays."""
    accumulator = EventAccumulator(str(log_dir), size_guidance={"images": 0})
    accumulator.Reload()
    return {
        tag: [
            np.asarray(Image.open(io.BytesIO(e.encoded_image_string)).convert("RGB")) for e in accumulator.Images(tag)
        ]
        for tag in accumulator.Tags()["images"]
    }


def _assert_not_blank(image: np.ndarray, min_colours: int = 8) -> None:
    assert image.ndim == 3 and image.shape[2] == 3 and min(image.shape[:2]) > 50
    colours = np.unique(image.reshape(-1, 3), axis=0)
    assert len(colours) >= min_colours, f"only {len(colours)} colours"
    assert image.std() > 5.0


def _red_and_blue_pixels(image: np.ndarray) -> tuple[int, int]:
    """Pixels coloured by ON (red) and OFF (blue) events in the default EventColours."""
    r, g, b = (image[..., k].astype(int) for k in range(3))
    return int(((r - g > 60) & (r - b > 60)).sum()), int(((b - r > 60) & (b - g > 20)).sum())


@pytest.mark.slow  # writes the 68-recording POKER-DVS stand-in (~15 s), then two short epochs
def test_figures_config_logs_input_and_spike_images_through_the_cli(tmp_path):
    runs = tmp_path / "runs"
    args = ["--config", FIGURES_CONFIG, "--data.root", str(tmp_path / "data")]
    args += ["--trainer.logger.init_args.save_dir", str(runs), "--trainer.max_epochs", "2"]
    # 0.5 of the two training batches; the 20 test recordings are one validation batch of 32
    args += ["--trainer.limit_train_batches", "0.5", *QUIET]
    cli = main(["fit", *args])
    images = _images(Path(cli.trainer.log_dir))
    expected = {"val/input", "val/spikes/net.lif/sample_0", "val/confusion_matrix"}
    assert expected <= set(images)
    for tag in expected:
        # a fit of seconds: only its last epoch (1) draws (see figure_budget), never the sanity check
        assert len(images[tag]) == 1
        for image in images[tag]:
            _assert_not_blank(image)
    on, off = _red_and_blue_pixels(images["val/input"][0])
    assert on > 20 and off > 20  # both polarities drawn
    raster = images["val/spikes/net.lif/sample_0"][0]
    assert (raster.max(axis=2) < 60).sum() > 50  # black spike marks


def test_callbacks_can_be_appended_on_the_command_line(tmp_path, quick, tiny_digits):
    extra = [
        "--trainer.max_epochs",
        "1",
        "--trainer.limit_train_batches",
        "2",
        "--trainer.callbacks+=event_lightning.callbacks.tensorboard_figures.SpikeRasterLogger",
        "--trainer.callbacks.module=net.lif",
        "--trainer.callbacks.n_samples=1",
        "--trainer.callbacks.tag=val/appended",
        "--trainer.callbacks+=event_lightning.callbacks.tensorboard_figures.InputFigureLogger",
        "--trainer.callbacks.tag=val/digits",
    ]
    cli = main(["fit", *quick.args(tmp_path / "runs", tiny_digits, *extra)])
    images = _images(Path(cli.trainer.log_dir))
    defaults = {"val/input", "val/spikes/net.lif/sample_0", "val/confusion_matrix"}  # listed in quickstart.yaml
    assert set(images) == {"val/digits", "val/appended/sample_0", *defaults}
    for tag in images:
        _assert_not_blank(images[tag][0])


def test_unknown_module_name_lists_the_available_names(tmp_path, quick, tiny_digits, capsys):
    extra = [
        "--trainer.max_epochs",
        "1",
        "--trainer.callbacks+=event_lightning.callbacks.tensorboard_figures.SpikeRasterLogger",
        "--trainer.callbacks.module=net.lift",
    ]
    with pytest.raises(ValueError, match=r"'net.lift' is not a submodule of LIFClassifier; available: .*net\.lif\b"):
        main(["fit", *quick.args(tmp_path / "runs", tiny_digits, *extra)])


# --------------------------------------------------------------------------- Python level


class _PoseSNNModule(pl.LightningModule):
    """The spiking pose UNet on random event counts: a real spiking model other than the LIF classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.net = SpikingPoseUNet(in_channels=2, n_joints=3, base_channels=2)

    def _loss(self, batch: tuple[torch.Tensor]) -> torch.Tensor:
        (events,) = batch  # [B, T, 2, H, W] as the pose DataModule stacks them
        return self.net(events.transpose(0, 1)).out.square().mean()

    def training_step(self, batch, batch_idx):
        return self._loss(batch)

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self._loss(batch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _pose_loader() -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    events = torch.poisson(torch.full((4, 5, 2, 16, 16), 1.5), generator=generator)
    return DataLoader(TensorDataset(events), batch_size=2)


def _trainer(tmp_path: Path, logger, callbacks) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=1,
        limit_train_batches=1,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        logger=logger,
        callbacks=callbacks,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )


def test_pose_snn_layer_rasters_and_batch_first_input_in_a_trainer(tmp_path):
    callbacks = [
        SpikeRasterLogger("net.down1.lif", n_samples=2, max_neurons=40),
        InputFigureLogger(batch_key=0, layout="BTPHW", max_panels=5),
    ]
    trainer = _trainer(tmp_path, TensorBoardLogger(tmp_path, name="pose"), callbacks)
    trainer.fit(_PoseSNNModule(), _pose_loader(), _pose_loader())
    images = _images(Path(trainer.log_dir))
    assert set(images) == {"val/input", "val/spikes/net.down1.lif/sample_0", "val/spikes/net.down1.lif/sample_1"}
    for logged in images.values():
        assert len(logged) == 1
        _assert_not_blank(logged[0])


def test_without_tensorboard_the_callbacks_warn_once_and_log_nothing(tmp_path):
    callbacks = [SpikeRasterLogger("net.down1.lif"), InputFigureLogger(batch_key=0, layout="BTPHW")]
    trainer = _trainer(tmp_path, CSVLogger(tmp_path), callbacks)
    trainer.fit_loop.max_epochs = 2
    trainer.limit_val_batches = 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(_PoseSNNModule(), _pose_loader(), _pose_loader())
    messages = [str(w.message) for w in caught if "no TensorBoardLogger" in str(w.message)]
    assert sorted(m.split(":")[0] for m in messages) == ["InputFigureLogger", "SpikeRasterLogger"]
    assert not list(tmp_path.rglob("events.out.tfevents.*"))
    assert callbacks[0]._handle is None  # no hook left behind


def test_only_global_rank_zero_registers_the_hook(tmp_path, monkeypatch):
    callback = SpikeRasterLogger("net.down1.lif")
    module = _PoseSNNModule()
    trainer = _trainer(tmp_path, TensorBoardLogger(tmp_path), [callback])
    callback.setup(trainer, module, "fit")
    monkeypatch.setattr(type(trainer), "is_global_zero", property(lambda self: False))
    callback.on_validation_epoch_start(trainer, module)  # decides whether this epoch draws
    callback.on_validation_batch_start(trainer, module, None, 0)
    assert callback._handle is None
    monkeypatch.setattr(type(trainer), "is_global_zero", property(lambda self: True))
    callback.on_validation_epoch_start(trainer, module)
    callback.on_validation_batch_start(trainer, module, None, 0)
    assert callback._handle is not None
    callback.teardown(trainer, module, "fit")
    assert callback._handle is None


def _raster_interior(canvas) -> tuple[int, int, np.ndarray]:
    """Width, height and black-pixel mask of a raster canvas's plot, read from its pixels.

    The raster sits inside a grey (160) frame; spikes are its only black pixels before the text is
    written.
    """
    grey = canvas.pixels[..., 0] == 160
    top, left = np.argwhere(grey).min(axis=0)
    width = int(np.flatnonzero(grey[top]).max() - left - 1)
    height = int(np.flatnonzero(~grey[top + 1 :, left]).min()) - 1  # the frame's bottom line is grey too
    inner = canvas.pixels[top + 1 : top + 1 + height, left + 1 : left + 1 + width, 0] == 0
    return width, height, inner


def _spike_blocks(canvas, n_steps: int, n_rows: int) -> list[tuple[int, int]]:
    """(step, neuron row) of every spike block; block sizes from the plot's size over the steps and rows."""
    width, height, inner = _raster_interior(canvas)
    col_w, row_h = width // n_steps, height // n_rows
    assert col_w * n_steps == width and row_h * n_rows == height
    blocks = inner.reshape(n_rows, row_h, n_steps, col_w)
    assert (blocks.all(axis=(1, 3)) == blocks.any(axis=(1, 3))).all()  # every block all black or all white
    return sorted((int(t), int(n)) for n, t in np.argwhere(blocks.all(axis=(1, 3))))


def test_raster_draws_the_most_active_neurons_at_their_spike_times():
    spikes = torch.zeros(6, 2, 2, 5)  # [T, B, C, W] -> 10 neurons per sample
    spikes[[0, 2, 4], 1, 0, 3] = 1.0  # neuron 3: three spikes
    spikes[[1, 5], 1, 1, 2] = 1.0  # neuron 7: two spikes
    spikes[3, 1, 1, 4] = 1.0  # neuron 9: one spike
    spikes[0, 0, 0, 0] = 1.0  # sample 0, neuron 0
    canvases = spike_raster_canvases(spikes, RasterSelection(n_samples=2, max_neurons=2))
    assert len(canvases) == 2
    # rows 0 and 1 are neurons 3 and 7 (index order), at their steps
    points = _spike_blocks(canvases[1], 6, 2)
    assert points == [(0, 0), (1, 1), (2, 0), (4, 0), (5, 1)]
    assert "2 most active of 10 neurons" in canvases[1].texts[0]
    first = spike_raster_canvases(spikes, RasterSelection(n_samples=2, max_neurons=4, neurons="first"))
    assert _spike_blocks(first[1], 6, 4) == [(0, 3), (2, 3), (4, 3)]
    batch_first = spike_raster_canvases(spikes.transpose(0, 1), RasterSelection(max_neurons=2, time_first=False))
    assert _spike_blocks(batch_first[1], 6, 2) == points


def test_long_rasters_merge_steps_into_columns():
    from event_lightning.viz.canvas_figures import spike_raster_canvas

    spikes = np.zeros((1000, 3))
    spikes[[0, 1, 998], 0] = 1  # steps 0 and 1 share column 0; step 998 is in the last column
    spikes[500, 2] = 1
    canvas = spike_raster_canvas(spikes, dt_ms=0.5, width_px=250)  # 4 steps per column
    assert _spike_blocks(canvas, 250, 3) == [(0, 0), (125, 2), (249, 0)]
    assert "500" in canvas.texts and "time (ms)" in canvas.texts  # the axis ends at 1000 x 0.5 ms
    assert "2" in canvas.texts  # the count strip's top: two spikes in column 0
    with pytest.raises(ValueError, match=r"expected spikes \[T, N\], found shape \(4,\)"):
        spike_raster_canvas(np.zeros(4))


def test_tuple_outputs_need_a_valid_element():
    spikes, v = torch.ones(3, 1, 4), torch.zeros(1, 4)
    assert select_output((spikes, v), 0) is spikes
    named = SNNOutput(out=spikes, v_last={"a": v})
    assert select_output(named, "out") is spikes and select_output(named, 0) is spikes
    with pytest.raises(ValueError, match=r"output_index .* found 2; elements: 0: \(3, 1, 4\), 1: \(1, 4\)"):
        select_output((spikes, v), 2, "net.lif")
    with pytest.raises(ValueError, match="element 'v_last' .* not a tensor"):
        select_output(named, "v_last")
    with pytest.raises(ValueError, match=r"expected \[T, B, \.\.\.\] spikes"):
        spike_raster_canvases(torch.ones(3, 4))


def test_input_panels_sum_the_steps_and_drop_time_padding():
    from event_lightning.callbacks.tensorboard_figures.inputs import _to_panels

    frames = np.zeros((10, 2, 3, 3))
    frames[:7] = np.arange(7)[:, None, None, None]  # steps 7..9 are padding
    panels, titles = _to_panels(frames, max_panels=3)
    assert titles == ["steps 0-1", "steps 2-3", "steps 4-6"]
    np.testing.assert_array_equal(panels[:, 0, 0, 0], [0 + 1, 2 + 3, 4 + 5 + 6])
    assert panels.sum() == frames.sum()


def test_input_canvas_errors_name_the_init_arg():
    with pytest.raises(ValueError, match=r"keys \['label', 'x'\] .* set init arg batch_key"):
        input_canvas({"x": torch.zeros(2, 2, 4, 4), "label": torch.zeros(2)})
    with pytest.raises(ValueError, match="batch_key 'frame' is not in the batch"):
        input_canvas({"frames": torch.zeros(2, 2, 2, 4, 4)}, batch_key="frame")
    with pytest.raises(ValueError, match="batch_key must be an integer index"):
        input_canvas((torch.zeros(2, 2, 2, 4, 4), torch.zeros(2)), batch_key="frames")
    with pytest.raises(ValueError, match=r"polarity axis P has 3 entries .* set init arg layout"):
        input_canvas(torch.zeros(4, 2, 3, 8, 8), layout="TBPHW")
    with pytest.raises(ValueError, match="cannot guess the layout .* set init arg layout"):
        input_canvas(torch.zeros(4, 8))


def test_event_token_batches_are_drawn_from_their_events():
    rng = np.random.default_rng(0)
    n = 400
    x, y = rng.integers(0, 20, (2, 2, n))
    p = rng.integers(0, 2, (2, n))
    t = np.sort(rng.random((2, n)), axis=1).astype(np.float32)  # normalised times, as Event2Vec
    valid = np.ones((2, n), dtype=bool)
    valid[1, 300:] = False
    batch = EventBatch(*(torch.from_numpy(a) for a in (x, y, t, p, valid)), label=torch.zeros(2, dtype=torch.long))
    canvas = input_canvas(batch, max_panels=4, sensor_size=[20, 20, 2], labels=batch.label, predictions=[0, 1])
    # row labels on the left, panel labels above their panels, in the order of the rows
    titles = [text for text in canvas.texts if text.startswith("events")]
    assert titles[:4] == ["events 0-99", "events 100-199", "events 200-299", "events 300-399"]
    assert titles[4:] == ["events 0-74", "events 75-149", "events 150-224", "events 225-299"]
    rows = [text for text in canvas.texts if text.startswith("#")]
    assert rows == ["#0\nlabel 0\npred 0", "#1\nlabel 0\npred 1 (wrong)"]
    on, off = _red_and_blue_pixels(canvas.render())
    assert on > 20 and off > 20


def test_hgvae_encoder_layer_hook_called_directly(tmp_path):
    from event_lightning.models.hgvae import HybridGuidedVAE

    model = HybridGuidedVAE(
        sensor_size=[32, 32, 2], num_classes=4, conv_channels=[4, 4], pool_sizes=[2, 2], out_features=16, lsuv=False
    )
    callback = SpikeRasterLogger("net.encoder.layers.1", output_index=0, n_samples=1, max_neurons=20)
    logger = TensorBoardLogger(tmp_path, name="hgvae")
    trainer = _trainer(tmp_path, logger, [callback])
    callback.setup(trainer, model, "validate")
    frames = torch.poisson(torch.full((6, 2, 2, 32, 32), 2.0), generator=torch.Generator().manual_seed(1))
    callback.on_validation_epoch_start(trainer, model)
    callback.on_validation_batch_start(trainer, model, {"frames": frames}, 0)
    with torch.no_grad():
        model.net(frames)
    assert callback._handle is None  # removed after the first forward
    callback.on_validation_batch_end(trainer, model, None, {"frames": frames}, 0)
    assert _images(Path(logger.log_dir)) == {}  # drawn at the end of the epoch, not in the step
    callback.on_validation_epoch_end(trainer, model)
    logger.experiment.flush()
    images = _images(Path(logger.log_dir))
    assert set(images) == {"val/spikes/net.encoder.layers.1/sample_0"}
    _assert_not_blank(images["val/spikes/net.encoder.layers.1/sample_0"][0])
    # the dense last layer never runs its forward (only its membrane traces): nothing to draw, said so
    last = SpikeRasterLogger("net.encoder.layers.2")
    last.setup(trainer, model, "validate")
    last.on_validation_epoch_start(trainer, model)
    last.on_validation_batch_start(trainer, model, {"frames": frames}, 0)
    with torch.no_grad():
        model.net(frames)
    last.on_validation_batch_end(trainer, model, None, {"frames": frames}, 0)
    with pytest.warns(UserWarning, match="did not run during the first validation batch"):
        last.on_validation_epoch_end(trainer, model)


def test_add_png_writes_the_image_tensorboard_reads_back(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    from event_lightning.callbacks.tensorboard_figures.periodic import add_png, png_bytes

    image = np.random.default_rng(0).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    writer = SummaryWriter(str(tmp_path))
    add_png(writer, "val/x", image, 7)
    writer.close()
    accumulator = EventAccumulator(str(tmp_path), size_guidance={"images": 0})
    accumulator.Reload()
    (event,) = accumulator.Images("val/x")
    assert event.step == 7 and (event.height, event.width) == (30, 50)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(event.encoded_image_string))), image)

    class _OtherWriter:  # a writer without torch's file_writer gets add_image
        def add_image(self, tag, img, global_step, dataformats):
            self.called = (tag, img.shape, global_step, dataformats)

    other = _OtherWriter()
    add_png(other, "val/x", image, 3)
    assert other.called == ("val/x", (30, 50, 3), 3, "HWC")
    with pytest.raises(ValueError, match=r"png_bytes: expected uint8 \[H, W, 3\], found float64 \(30, 50, 3\)"):
        png_bytes(image.astype(float))
