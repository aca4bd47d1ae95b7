"""A short fit of the HG-VAE on the synthetic DVSGesture stand-in (tonic .npy layout, read back).

After a few epochs of the three-phase training: the reconstruction error (decoding mu) falls, the
excitation classifier on the sampled guided part beats chance, and a fresh linear probe reads the
class better from z[:, :K] than from z[:, K:] (the adversarial phase strips it from the latter).
The network is far smaller than the reference so that this runs in well under a minute on a CPU;
at this size the outcome depends on the seed (see docs/hgvae.md), so one checked seed is used.
"""

from __future__ import annotations

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression

from event_lightning.data.datasets.dvsgesture import DVSGestureDataModule
from event_lightning.models.hgvae import HybridGuidedVAE

K = 4


@pytest.fixture(scope="module")
def gestures(tmp_path_factory: pytest.TempPathFactory) -> DVSGestureDataModule:
    synthetic = {
        "n_classes": K,
        "train_users": list(range(1, 9)),
        "test_users": [24, 25, 26, 27],
        "duration_us": 300_000,
        "frame_interval_us": 5_000,
    }
    data = DVSGestureDataModule(
        root=str(tmp_path_factory.mktemp("hgvae_fit")),
        synthetic=True,
        synthetic_config=synthetic,
        dt_us=5_000,
        n_time_steps=16,
        test_random_window=False,
        batch_size=32,
    )
    data.prepare_data()
    data.setup("fit")
    return data


@pytest.fixture
def one_thread():
    # OpenMP spin-waits make small kernels crawl on a shared 2-core machine; one thread is faster.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _latents(model: HybridGuidedVAE, loader) -> tuple[np.ndarray, np.ndarray]:
    model.eval()
    zs, ys = [], []
    with torch.no_grad():
        for batch in loader:
            zs.append(model.net(batch["frames"]).z)
            ys.append(batch["target"])
    return torch.cat(zs).numpy(), torch.cat(ys).numpy()


def _reconstruction_error(model: HybridGuidedVAE, loader) -> float:
    model.eval()
    with torch.no_grad():
        errors = [
            F.mse_loss(model.net.decoder(model.net.encode(b["frames"])[0]), model.reconstruction_target(b["frames"]))
            for b in loader
        ]
    return float(torch.stack(errors).mean())


def _probe(z_train: np.ndarray, y_train: np.ndarray, z_test: np.ndarray, y_test: np.ndarray) -> float:
    return float(LogisticRegression(max_iter=2000).fit(z_train, y_train).score(z_test, y_test))


@pytest.mark.slow
def test_short_fit_guides_the_latent(gestures: DVSGestureDataModule, one_thread) -> None:
    pl.seed_everything(0, verbose=False)
    model = HybridGuidedVAE(
        sensor_size=gestures.sensor_size.as_list(),
        num_classes=K,
        conv_channels=[4, 8],
        pool_sizes=[2, 2],
        out_features=64,
        alpha=0.97,
        beta=0.92,
        dimz=24,
        classifier_hidden=32,
        vae_beta=0.05,
        learning_rates=[1e-2, 1e-2, 1e-2, 1e-2],
        lr_drop_interval=100,
    )
    before = _reconstruction_error(model, gestures.test_dataloader())
    trainer = pl.Trainer(
        max_epochs=10,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
    )
    trainer.fit(model, train_dataloaders=gestures.train_dataloader())
    after = _reconstruction_error(model, gestures.test_dataloader())
    assert after < 0.9 * before, (before, after)

    z_train, y_train = _latents(model, gestures.train_dataloader())
    z_test, y_test = _latents(model, gestures.test_dataloader())
    with torch.no_grad():
        predicted = model.net.excite(torch.from_numpy(z_train[:, :K])).argmax(1).numpy()
    guided_accuracy = float((predicted == y_train).mean())
    assert guided_accuracy > 0.5, guided_accuracy  # chance: 0.25

    probe_guided = _probe(z_train[:, :K], y_train, z_test[:, :K], y_test)
    probe_unguided = _probe(z_train[:, K:], y_train, z_test[:, K:], y_test)
    assert probe_unguided < probe_guided, (probe_guided, probe_unguided)
