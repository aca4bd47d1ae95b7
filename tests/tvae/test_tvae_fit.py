"""Short fits of the TVAE on the offline stand-ins, and the real entrypoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch

from event_lightning.cli import main
from event_lightning.data.datasets.mnist import MNISTSequenceDataModule
from event_lightning.data.standins.mnist import write_synthetic_mnist
from event_lightning.models.tvae import TopographicVAE

CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mnist_synthetic")
    write_synthetic_mnist(root)
    return root


def short_fit(root: Path, grouper: str, seed: int) -> tuple[dict[str, float], dict[str, float]]:
    """Validation metrics before and after a short fit of an Lpartial-style model (4 capsules)."""
    pl.seed_everything(seed, verbose=False)
    data = MNISTSequenceDataModule(root=str(root), synthetic=True, batch_size=8)
    model = TopographicVAE(
        n_time_steps=data.n_time_steps,
        grouper=grouper,
        n_caps=4,
        cap_dim=18,
        group_kernel=[13, 13],
        n_off_diag=1,
        mu_init=30.0,
        n_is_samples=2,
    )
    trainer = pl.Trainer(
        max_epochs=1,
        limit_train_batches=8,
        limit_val_batches=2,
        check_val_every_n_epoch=2,  # only the explicit validate() calls evaluate
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        accelerator="cpu",
        inference_mode=False,  # metric states made by validate() under inference mode break fit()
    )
    before = trainer.validate(model, datamodule=data, verbose=False)[0]
    trainer.fit(model, datamodule=data)
    after = trainer.validate(model, datamodule=data, verbose=False)[0]
    return before, after


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0])  # also checked with seeds 1 and 2 (same margins)
def test_tvae_lpartial_improves_elbo_and_beats_vae_equivariance(mnist_root: Path, seed: int) -> None:
    tvae_before, tvae_after = short_fit(mnist_root, "shifting", seed)
    vae_before, vae_after = short_fit(mnist_root, "none", seed)
    # ELBO improves (the loss is the negative ELBO per frame), and so does the IS log-likelihood.
    assert tvae_after["val/loss"] < tvae_before["val/loss"] - 50
    assert tvae_after["val/log_px_is"] > tvae_before["val/log_px_is"] + 50
    assert vae_after["val/loss"] < vae_before["val/loss"]
    # Equivariance: the TVAE's capsules roll with the transformation far better than the VAE's.
    assert tvae_after["val/eq_error"] < 0.8 * vae_after["val/eq_error"]


@pytest.mark.slow
def test_entrypoint_fits_the_synthetic_config(tmp_path: Path, mnist_root: Path) -> None:
    cli = main(
        [
            "fit",
            "--config",
            str(CONFIG / "tvae_Lpartial_mnist_synthetic.yaml"),
            "--data.init_args.root",
            str(mnist_root),
            "--data.init_args.num_workers",
            "0",
            "--model.init_args.n_caps",
            "2",
            "--model.init_args.n_is_samples",
            "2",
            "--trainer.max_epochs",
            "1",
            "--trainer.limit_train_batches",
            "2",
            "--trainer.limit_val_batches",
            "2",
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
            "--trainer.enable_progress_bar",
            "false",
        ]
    )
    metrics = cli.trainer.callback_metrics
    assert {"train/loss_epoch", "val/loss", "val/eq_error", "val/log_px_is", "train/mu"} <= set(metrics)
    assert cli.model.hparams.n_time_steps == 18  # linked from the DataModule
    run = tmp_path / "tvae_Lpartial_mnist_synthetic" / "version_0"
    assert (run / "checkpoints" / "last.ckpt").is_file()
    events = list(run.glob("events.out.tfevents.*"))
    assert events and max(e.stat().st_size for e in events) > 10_000  # figures were written
    reloaded = TopographicVAE.load_from_checkpoint(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert torch.equal(reloaded.net.grouper.kernel, cli.model.net.grouper.kernel.cpu())
