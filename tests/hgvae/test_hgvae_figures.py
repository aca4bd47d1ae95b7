"""The HG-VAE figures the reference draws: its "switch" and "inhib" latent traversals and the
training-set t-SNE, logged to TensorBoard by the configs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from event_lightning.callbacks.hgvae_figures import HGVAEFigures, inhibit_traversal, switch_traversal, tsne_embedding
from event_lightning.cli import main

REPO = Path(__file__).resolve().parents[2]


def _reference_inhibit_latents(z0: torch.Tensor, cls: int, k: int, low: torch.Tensor, high: torch.Tensor, steps: int):
    """The reference's latent_traversal_inhib loop, one latent per plot."""
    dims = len(z0)
    chunk = (dims - k) // k
    max_unguided = high[k:]
    lat = z0.clone()
    lat[cls] = low[cls]
    rows = [lat.clone()]
    for i in range(1, steps + 1):
        lat[k * i : k * i + chunk] = max_unguided[k * (i - 1) : k * (i - 1) + chunk]
        rows.append(lat.clone())
    return torch.stack(rows)


def test_cheaper_figures_keep_what_they_show() -> None:
    """Fewer t-SNE steps still separate two clusters; the target/reconstruction pairs are one image."""
    rng = np.random.default_rng(0)
    z = np.concatenate([rng.normal(0, 1, (40, 20)), rng.normal(8, 1, (40, 20))]).astype(np.float32)
    xy = tsne_embedding(z, iterations=250)
    centre_gap = np.linalg.norm(xy[:40].mean(0) - xy[40:].mean(0))
    assert centre_gap > 3 * max(xy[:40].std(0).max(), xy[40:].std(0).max())
    with pytest.raises(ValueError, match="tsne_iterations"):
        HGVAEFigures(tsne_iterations=100)
    pairs = torch.rand(3, 2, 8, 8)
    figure = HGVAEFigures._pairs_figure(pairs, pairs.flip(-1))
    assert len(figure.axes) == 1 and len(figure.axes[0].images) == 1


@pytest.mark.parametrize(("dims", "k"), [(100, 10), (100, 4), (16, 3)])
def test_inhibit_traversal_raises_the_reference_chunks(dims: int, k: int) -> None:
    torch.manual_seed(0)
    z0, low, high = torch.randn(dims), -torch.rand(dims) - 1, torch.rand(dims) + 1
    ours = inhibit_traversal(torch.nn.Identity(), z0, 1, k, low, high, 10)
    torch.testing.assert_close(ours, _reference_inhibit_latents(z0, 1, k, low, high, 10), rtol=0, atol=0)


def test_switch_traversal_trades_one_class_dimension_for_another() -> None:
    torch.manual_seed(0)
    z0, low, high = torch.randn(12), -torch.rand(12) - 1, torch.rand(12) + 1
    latents = switch_traversal(torch.nn.Identity(), z0, (1, 2), low, high, 10)
    assert latents.shape == (11, 12)
    torch.testing.assert_close(latents[:, 1], torch.linspace(float(low[1]), float(high[1]), 11))
    torch.testing.assert_close(latents[:, 2], torch.linspace(float(high[2]), float(low[2]), 11))
    # the reference's step (|min| + max) / n from min, for min <= 0
    reference = low[1] + torch.arange(11) * (low[1].abs() + high[1]) / 10
    torch.testing.assert_close(latents[:, 1], reference)
    untouched = [d for d in range(12) if d not in (1, 2)]
    assert torch.equal(latents[:, untouched], z0[untouched].expand(11, -1))


@pytest.mark.slow
def test_the_synthetic_gesture_config_logs_the_reference_figures(tmp_path: Path) -> None:
    """config/hgvae_dvsgesture_synthetic.yaml as it is, shrunk: one epoch writes every figure."""
    standin = {"train_users": [1, 2], "test_users": [24], "lightings": ["led"], "duration_us": 200_000}
    main(
        [
            "fit",
            "--config",
            str(REPO / "config" / "hgvae_dvsgesture_synthetic.yaml"),
            "--trainer.logger.init_args.save_dir",
            str(tmp_path / "runs"),
            "--trainer.max_epochs",
            "1",
            "--trainer.enable_progress_bar",
            "false",
            "--trainer.enable_model_summary",
            "false",
            "--data.init_args.root",
            str(tmp_path / "data"),
            "--data.init_args.synthetic_config",
            json.dumps({**standin, "frame_interval_us": 10_000}),
            "--data.init_args.n_time_steps",
            "20",
            "--data.init_args.batch_size",
            "8",
            "--data.init_args.cache",
            "false",
            "--model.init_args.conv_channels",
            "[4, 4, 8]",
        ]
    )
    [version] = (tmp_path / "runs" / "hgvae_dvsgesture_synthetic").iterdir()
    events = EventAccumulator(str(version), size_guidance={"images": 0})
    events.Reload()
    images = set(events.Tags()["images"])
    assert {
        "hgvae/tsne",
        "hgvae/reconstructions",
        "hgvae/traversals",
        "hgvae/tsne_train",
        "hgvae/traversal_switch",
        "hgvae/traversal_inhibit",
    } <= images, images
    for tag in ("hgvae/tsne_train", "hgvae/traversal_switch", "hgvae/traversal_inhibit"):
        [image] = events.Images(tag)
        assert image.step == 0 and image.width > 100 and image.height > 50
