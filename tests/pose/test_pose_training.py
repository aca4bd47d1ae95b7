"""Short fits on the synthetic DHP19 stand-in (MPJPE falls), hybrid wiring and the CLI entrypoint."""

import os

import pytest
import pytorch_lightning as pl
import torch

from event_lightning.cli import main
from event_lightning.data.datasets.dhp19 import SyntheticDHP19DataModule
from event_lightning.models.pose import PoseCNN, PoseHybridCNNRNN, PoseHybridCNNSNN, PoseRNN, PoseSNN
from event_lightning.models.pose.base import LabelledSteps

SUBJECTS = [1, 2, 13]
SEED = int(os.environ.get("POSE_TEST_SEED", "0"))  # the short fits were checked with seeds 0-2 (hybrid: 0-9)
DATA = dict(subjects=SUBJECTS, duration_ms=800, camera_views=[3], cnn_event_count=1500, downsample=8)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory, single_thread):
    root = tmp_path_factory.mktemp("synthetic_dhp19")
    SyntheticDHP19DataModule(root=str(root), synthetic_cameras=[2, 3], **DATA).prepare_data()
    return str(root)


def _data(root: str, **kwargs) -> SyntheticDHP19DataModule:
    return SyntheticDHP19DataModule(root=root, synthetic_cameras=[2, 3], eval_batch_size=32, **{**DATA, **kwargs})


def _trainer(steps: int) -> pl.Trainer:
    return pl.Trainer(
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        check_val_every_n_epoch=10_000,
        accelerator="cpu",
    )


def _val_mpjpe(trainer: pl.Trainer, model: pl.LightningModule, dm: pl.LightningDataModule) -> dict[str, float]:
    return trainer.validate(model, datamodule=dm, verbose=False)[0]


@pytest.fixture(scope="module")
def trained_cnn(data_root, tmp_path_factory):
    """A CNN fitted for 60 steps: (checkpoint path, val MPJPE before, after)."""
    pl.seed_everything(SEED)
    dm = _data(data_root, mode="cnn", step_ms=10, test_step_ms=50, batch_size=8)
    model = PoseCNN(base_channels=4, lr=3e-3)
    trainer = _trainer(60)
    before = _val_mpjpe(trainer, model, dm)
    trainer.fit(model, datamodule=dm)
    after = _val_mpjpe(trainer, model, dm)
    path = tmp_path_factory.mktemp("cnn") / "cnn.ckpt"
    trainer.save_checkpoint(path)
    return str(path), before, after


@pytest.mark.slow
def test_cnn_short_fit_lowers_mpjpe(trained_cnn):
    _, before, after = trained_cnn
    assert before["val/mpjpe"] > 35  # untrained: far from the joints
    assert after["val/mpjpe"] < 0.75 * before["val/mpjpe"]
    assert after["val/loss"] < before["val/loss"]
    # The "held at 10 Hz" baseline is logged for the window labels of the same frames.
    assert after["val/mpjpe_held"] < 0.8 * before["val/mpjpe_held"]


@pytest.mark.slow
def test_hybrid_short_fit_lowers_mpjpe_with_the_cnn_frozen(trained_cnn, data_root):
    ckpt, _, cnn_after = trained_cnn
    pl.seed_everything(SEED)
    dm = _data(data_root, mode="hybrid", window_ms=50, step_ms=20, test_step_ms=50, batch_size=2)
    # lr 1e-2: at 2e-2 the fit is chaotic for some seeds. Seed 0 ended at 0.84 of its starting
    # MPJPE, at 0.93 after nothing but a change of float32 rounding in the up layers, and at 0.68
    # when the CNN's fixture skipped its validation pass before fitting; seeds 1-9 at 0.55-0.74
    # either way. At 1e-2 both roundings give 0.59-0.81 for seeds 0-9 (each seed within 0.02), and
    # a hybrid that does not learn fails: lr 0 ends at 0.97-1.32 (seeds 0-3; the BatchNorm
    # statistics still move), an SNN frozen with only the state heads training at 0.92-1.06.
    model = PoseHybridCNNSNN(cnn_checkpoint=ckpt, cnn_base_channels=4, base_channels=4, lr=1e-2)
    trainer = _trainer(100)
    before = _val_mpjpe(trainer, model, dm)
    cnn_weights = {k: v.clone() for k, v in model.net.cnn.state_dict().items()}
    # The loaded CNN is the trained one: the held baseline is the CNN's own score.
    assert before["val/mpjpe_held"] < 0.8 * cnn_after["val/mpjpe"] + 0.2 * before["val/mpjpe"]
    trainer.fit(model, datamodule=dm)
    after = _val_mpjpe(trainer, model, dm)
    assert after["val/mpjpe"] < 0.85 * before["val/mpjpe"]
    for key, value in model.net.cnn.state_dict().items():
        torch.testing.assert_close(value, cnn_weights[key])
    assert not model.net.cnn.training


def _one_batch(data_root: str, mode: str) -> dict:
    dm = _data(data_root, mode=mode, window_ms=30, step_ms=50, batch_size=2)
    dm.setup("fit")
    return dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)


def test_membrane_potential_loss_targets_the_next_windows_cnn_states(data_root, trained_cnn, single_thread):
    batch = _one_batch(data_root, "hybrid")
    model = PoseHybridCNNSNN(cnn_checkpoint=trained_cnn[0], cnn_base_channels=4, base_channels=4)
    model.setup("fit")
    model.log = lambda *args, **kwargs: None
    model.train()
    labelled = LabelledSteps.of(batch["events"].shape[1], batch["landmarks"].shape[1])
    assert list(range(labelled.n_run))[labelled.steps] == batch["label_steps"][0].tolist()
    heatmaps, _ = model.window(batch)
    final = dict(model._final_state)
    total = model.training_loss(heatmaps, batch, labelled)
    out_loss = model._window_loss(heatmaps, batch, labelled)
    target = model.net.cnn_states(batch["cnn_input_next"])
    mp_loss = torch.stack([torch.nn.functional.mse_loss(final[k], target[k]) for k in target]).mean()
    torch.testing.assert_close(total, 0.95 * out_loss + 0.05 * mp_loss, rtol=1e-4, atol=1e-6)
    assert set(final) == set(target) and len(target) == 9


def test_every_model_takes_a_training_step(data_root, trained_cnn, single_thread):
    sequence = _one_batch(data_root, "hybrid")
    models = [
        PoseSNN(base_channels=4),
        PoseRNN(base_channels=4),
        PoseHybridCNNRNN(cnn_checkpoint=trained_cnn[0], cnn_base_channels=4, base_channels=4),
        PoseHybridCNNSNN(cnn_checkpoint=trained_cnn[0], cnn_base_channels=4, base_channels=4, state_init=False),
        PoseHybridCNNSNN(cnn_checkpoint=trained_cnn[0], cnn_base_channels=4, base_channels=4, residual_output=False),
    ]
    for model in models:
        model.setup("fit")
        model.log = lambda *args, **kwargs: None
        model.train()
        loss = model.training_step(sequence, 0)
        loss.backward()
        assert torch.isfinite(loss)
        grads = [p.grad for p in model.parameters() if p.requires_grad]
        assert any(g is not None and g.abs().sum() > 0 for g in grads), type(model).__name__


def test_grid_size_is_checked_against_the_network():
    with pytest.raises(ValueError, match="multiples of 32"):
        PoseCNN(sensor_size=[48, 48, 2])
    with pytest.raises(ValueError, match="eval_steps"):
        PoseSNN(eval_steps=20, n_time_steps=10)


@pytest.mark.slow
def test_cli_fits_the_synthetic_cnn_config(data_root, tmp_path, single_thread):
    args = [
        "fit",
        "--config",
        "config/pose_cnn_synthetic.yaml",
        "--trainer.max_epochs",
        "1",
        "--trainer.limit_train_batches",
        "2",
        "--trainer.limit_val_batches",
        "2",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.logger.init_args.save_dir",
        str(tmp_path),
        "--data.init_args.root",
        data_root,
        "--data.init_args.subjects",
        str(SUBJECTS),
        "--data.init_args.duration_ms",
        "800",
        "--data.init_args.movements_per_subject",
        "1",
        "--data.init_args.synthetic_cameras",
        "[2, 3]",
    ]
    cli = main(args)
    assert cli.trainer.global_step == 2
    metrics = cli.trainer.callback_metrics
    assert "val/mpjpe" in metrics and "val/power_w" in metrics and "val/mpjpe_held" in metrics
    assert list(tmp_path.glob("pose_cnn_synthetic/version_0/checkpoints/last.ckpt"))


def test_hybrid_loads_cnn_and_snn_checkpoints(trained_cnn, tmp_path, single_thread):
    snn = PoseSNN(base_channels=4, tau=3.0)
    snn_path = tmp_path / "snn.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in snn.net.state_dict().items()}}, snn_path)
    model = PoseHybridCNNSNN(
        cnn_checkpoint=trained_cnn[0], snn_checkpoint=str(snn_path), cnn_base_channels=4, base_channels=4
    )
    model.setup("fit")
    cnn_state = torch.load(trained_cnn[0], weights_only=True)["state_dict"]
    torch.testing.assert_close(model.net.cnn.head.weight, cnn_state["net.head.weight"])
    for key, value in model.net.snn.state_dict().items():
        torch.testing.assert_close(value, snn.net.state_dict()[key])  # the pure SNN's tail BN is dropped
    missing = PoseHybridCNNSNN(cnn_checkpoint=str(tmp_path / "nope.ckpt"), cnn_base_channels=4, base_channels=4)
    with pytest.raises(FileNotFoundError, match=r"nope\.ckpt not found"):
        missing.setup("fit")
