"""The Topographic VAE on the GPU path, proven on the CPU proxies: no host syncs in a step or in the
frame rendering, float32 latents under autocast, compiled without recompiles, DDP replicas equal."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import pytorch_lightning as pl
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from event_lightning.callbacks.host_sync import HostSyncGuard, forbid_host_syncs
from event_lightning.callbacks.tvae_figures import TVAEFigures
from event_lightning.data.datasets.dsprites import DSpritesSequenceDataModule
from event_lightning.data.datasets.mnist import MNISTSequenceDataModule, render_sequences
from event_lightning.data.loading import image_transforms
from event_lightning.data.loading.image_transforms import (
    invert_3x3,
    perspective_matrix,
    rotation_scale_matrix,
    warp_homography,
)
from event_lightning.metrics.tvae import CapCorr
from event_lightning.models.tvae import TopographicVAE
from event_lightning.nn.tvae import TVAENet


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("tvae_gpu_mnist")


def _mnist(root: Path, **kwargs) -> MNISTSequenceDataModule:
    return MNISTSequenceDataModule(root=str(root), synthetic=True, **{"batch_size": 4, **kwargs})


def _model(**kwargs) -> TopographicVAE:
    settings = {"n_time_steps": 18, "n_caps": 4, "cap_dim": 18, "group_kernel": [13, 13], "n_off_diag": 1}
    return TopographicVAE(**{**settings, "n_is_samples": 2, **kwargs})


@pytest.mark.parametrize("kind", ["mnist", "dsprites"])
def test_steps_figures_and_frame_rendering_never_wait_on_the_host(
    kind, mnist_root, tmp_path, quiet_cpu_trainer, host_sync_checked_transfer
):
    """MNIST: importance-sampled likelihood in validation, perspective views in the rendering;
    dSprites: CapCorr on factor targets. The figure callback's per-step hook is checked too."""
    pl.seed_everything(0, verbose=False)
    if kind == "mnist":
        data = _mnist(mnist_root, eval_sequence="perspective")
        model = _model()
    else:
        data = DSpritesSequenceDataModule(
            root=str(tmp_path), synthetic=True, batch_size=4, max_transform_len=15, n_val_sequences=8
        )
        model = _model(
            n_time_steps=15, cap_dim=15, group_kernel=[10, 10], n_off_diag=0, image_channels=1, image_size=64
        )
    calls = host_sync_checked_transfer(data)
    figures = TVAEFigures(n_sequences=2, n_prior_samples=2)
    trainer = quiet_cpu_trainer(
        limit_train_batches=2, limit_val_batches=2, num_sanity_val_steps=0, precision="bf16-mixed",
        callbacks=[HostSyncGuard(check_steps=2), figures],
    )  # fmt: skip
    trainer.fit(model, data)
    assert len(calls) == 4
    assert torch.isfinite(trainer.callback_metrics["val/loss"])
    if kind == "dsprites":
        assert "val/capcorr_posY" in trainer.callback_metrics or "val/capcorr_posX" in trainer.callback_metrics


def test_homographies_are_inverted_in_closed_form_as_linalg_inv_did(monkeypatch):
    torch.manual_seed(0)
    angles, scales = torch.rand(200) * 360, 0.6 + 0.7 * torch.rand(200)
    matrices = torch.cat([rotation_scale_matrix(angles, scales, 28, 28), perspective_matrix(angles, 28, 28)])
    with forbid_host_syncs("invert_3x3"):
        inverse = invert_3x3(matrices.double())
    torch.testing.assert_close(inverse, torch.linalg.inv(matrices.double()), rtol=1e-12, atol=1e-12)
    # the warped frames: the former torch.linalg.inv (float64) path as the reference
    images = torch.rand(400, 3, 28, 28)
    warped = warp_homography(images, matrices)
    monkeypatch.setattr(image_transforms, "invert_3x3", torch.linalg.inv)
    torch.testing.assert_close(warped, warp_homography(images, matrices), rtol=0, atol=1e-6)


def test_rendering_mixed_kinds_without_a_host_sync_equals_rendering_each_kind():
    torch.manual_seed(1)
    digits = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    params = torch.stack([torch.rand(4, 6) * 360, 0.6 + 0.6 * torch.rand(4, 6), torch.rand(4, 6) * 2 * math.pi], -1)
    kind = torch.tensor([0, 1, 1, 0])
    with forbid_host_syncs("render_sequences"):
        mixed = render_sequences(digits, params, kind, colour=True)
    for k in (0, 1):
        rows = (kind == k).nonzero().flatten()
        alone = render_sequences(digits[rows], params[rows], kind[rows], colour=True)
        assert torch.equal(mixed[rows], alone)


def test_capcorr_defers_its_check_to_compute_and_computes_after_a_process_sync():
    t = torch.randn(2, 4, 3 * 4)
    factors = torch.zeros(2, 4, 5, dtype=torch.long)
    factors[:, :, 1] = torch.arange(4)  # scale steps 0..3: frame 0 is canonical
    metric = CapCorr(5, 3, 4)
    with forbid_host_syncs("CapCorr.update"):
        metric.update(t, factors)
    # after a sync across processes the list states are tensors
    metric.factor, metric.observed, metric.true = (torch.cat(s) for s in (metric.factor, metric.observed, metric.true))
    assert metric.compute().shape == (5,)
    factors[1, :, 1] = torch.arange(1, 5)  # never reaches index 0
    metric = CapCorr(5, 3, 4)
    metric.update(t, factors)  # no host read here ...
    with pytest.raises(ValueError, match=r"never reach index 0.*\(1 sequences\)"):
        metric.compute()  # ... the epoch-end compute reports it


@pytest.mark.parametrize("grouper", ["shifting", "torus2d"])
def test_latents_grouper_and_loss_stay_float32_under_autocast(grouper):
    torch.manual_seed(0)
    if grouper == "shifting":
        net, x = TVAENet(3, 28, n_caps=4, cap_dim=18, seq_len=18, group_kernel=[13, 13]), torch.rand(2, 18, 3, 28, 28)
    else:
        net = TVAENet(1, 28, n_caps=1, cap_dim=324, seq_len=1, grouper="torus2d", group_kernel=[5, 5], mu_init=10.0)
        x = torch.rand(16, 1, 1, 28, 28)
    with torch.no_grad():
        full = net(x, sample=False)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            mixed = net(x, sample=False)
            # the grouper alone: the same t bit for bit, whatever autocast would do to its convolution
            assert torch.equal(net.grouper(full.z, full.u), full.t)
    for name in ("z", "u", "t", "logits", "kl_z", "kl_u", "neg_log_px"):
        assert getattr(mixed, name).dtype == torch.float32, name
    drift = abs(mixed.loss() - full.loss()) / abs(full.loss())
    assert drift < 0.01, f"bf16 loss differs from float32 by {drift:.3%}"
    torch.testing.assert_close(mixed.t, full.t, rtol=0.05, atol=0.05)


@pytest.mark.slow
def test_compiled_equals_eager_and_compiles_one_graph_per_mode(
    mnist_root, tmp_path, quiet_cpu_trainer, aot_eager_compile, dynamo_recompiles
):
    """bf16-mixed as Lightning runs it. Training and evaluation compile one graph each; the rest of the
    run (later steps, a last validation batch of 1, a second epoch, the figure callback, a separate
    ``validate`` under inference mode) reuses them."""
    pl.seed_everything(0, verbose=False)
    data = _mnist(mnist_root, batch_size=5)
    data.setup("fit")
    x, labels = data.on_after_batch_transfer(next(iter(data.train_dataloader())), 0)
    eager, compiled = _model(), _model(compile=True)
    compiled.load_state_dict(eager.state_dict())
    compiled.configure_model()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False)  # Lightning's bf16-mixed
    for mode in ("train", "eval"):
        eager.train(mode == "train")
        compiled.train(mode == "train")
        torch.manual_seed(3)
        with torch.set_grad_enabled(mode == "train"), autocast:
            want = eager(x)
        torch.manual_seed(3)  # the same reparameterisation noise
        with torch.set_grad_enabled(mode == "train"), autocast:
            got = compiled(x)
        torch.testing.assert_close(got.t, want.t, rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(got.loss(), want.loss(), rtol=1e-4, atol=1e-2)
        if mode == "train":
            want.loss().backward()
            got.loss().backward()
            for (name, a), b in zip(eager.named_parameters(), compiled.parameters(), strict=True):
                torch.testing.assert_close(b.grad, a.grad, rtol=1e-3, atol=1e-3, msg=name)
    assert len(dynamo_recompiles) == 1 and "grad_mode" in dynamo_recompiles[0]  # the evaluation graph

    compiled.train()
    logger = pl.loggers.TensorBoardLogger(str(tmp_path), name="tvae", version=0)
    trainer = quiet_cpu_trainer(
        max_epochs=2, limit_train_batches=2, precision="bf16-mixed", logger=logger,
        callbacks=[TVAEFigures(n_sequences=2, n_prior_samples=2)],
    )  # fmt: skip
    data.datasets["test"].images = data.datasets["test"].images[:11]  # validation batches of 5, 5 and 1
    trainer.fit(compiled, data)
    trainer.validate(compiled, data, verbose=False)
    assert trainer.num_val_batches == [3]
    assert len(dynamo_recompiles) == 1, dynamo_recompiles[1:]
    events = EventAccumulator(logger.log_dir)
    events.Reload()
    assert "figures/capsule_traversal" in events.Tags()["images"]  # drawn eagerly, no graph of its own


@pytest.mark.slow
def test_two_process_ddp_keeps_the_replicas_equal(tmp_path, ddp_replicas_equal):
    """dSprites: the CapCorr states (lists) are gathered across the processes at the epoch's end."""
    ddp_replicas_equal(
        "tvae_Lpartial_dsprites_synthetic.yaml",
        "--data.init_args.root", str(tmp_path / "dsprites"), "--data.init_args.num_workers", "0",
        "--data.init_args.batch_size", "2", "--data.init_args.n_val_sequences", "8",
        "--model.init_args.n_is_samples", "2", "--trainer.limit_val_batches", "2",
    )  # fmt: skip


def test_training_loss_is_per_process_and_evaluation_synced():
    """``sync_dist`` on the evaluation logs only (a per-step collective for the training loss buys
    nothing the epoch mean of rank 0 does not show)."""
    logged = []
    model = _model()
    model.log = lambda name, value, **kwargs: logged.append((name, kwargs.get("sync_dist", False)))
    x = torch.rand(2, 18, 3, 28, 28)
    model.training_step((x, torch.zeros(2)), 0)
    model.validation_step((x, torch.zeros(2)), 0)
    synced = {name: sync for name, sync in logged}
    assert synced["train/loss"] is False and synced["val/loss"] is True and synced["val/kl"] is True
