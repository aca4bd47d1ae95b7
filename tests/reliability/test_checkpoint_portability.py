"""Every model's checkpoint loads compiled <-> uncompiled and with ``weights_only=True``.

``compile: true`` compiles networks in place (``nn.Module.compile``), so a compiled model's
state-dict keys carry no ``_orig_mod.`` prefix and its checkpoint loads into an eager model and
back. Checkpoints hold only tensors and plain Python values (hyperparameters are lists, numbers
and strings; the random-generator states are tensors), so ``torch.load(weights_only=True)`` --
the default of recent torch versions -- reads them. A GPU run's checkpoint is emulated by
rewriting a real one with CUDA location tags (all a file records of a tensor's device): it loads
on this CPU-only machine with ``map_location`` and through the CLI's ``--ckpt_path``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import pytorch_lightning as pl
import torch

from event_lightning.callbacks.rng_state import RNGStateCheckpoint
from event_lightning.models.event2vec import Event2VecClassifier
from event_lightning.models.hgvae import HybridGuidedVAE
from event_lightning.models.lif_classifier import LIFClassifier
from event_lightning.models.pose import PoseCNN, PoseHybridCNNRNN, PoseHybridCNNSNN, PoseRNN, PoseSNN
from event_lightning.models.tvae import TopographicVAE

SMALL: dict[type[pl.LightningModule], dict[str, Any]] = {
    LIFClassifier: {"sensor_size": [6, 5, 2], "num_classes": 3, "hidden_features": 8},
    Event2VecClassifier: {"num_classes": 4, "d_model": 16, "n_head": 2, "d_feedforward": 16, "n_layers": 1},
    HybridGuidedVAE: {
        "sensor_size": [32, 32, 2],
        "num_classes": 3,
        "n_time_steps": 4,
        "conv_channels": [4, 8],
        "pool_sizes": [2, 2],
        "dimz": 8,
        "classifier_hidden": 8,
    },
    TopographicVAE: {"n_time_steps": 4, "n_caps": 4, "cap_dim": 4, "image_channels": 1, "image_size": 28},
    PoseCNN: {"in_channels": 2, "n_joints": 3, "base_channels": 4},
    PoseSNN: {"n_joints": 3, "base_channels": 4},
    PoseRNN: {"n_joints": 3, "base_channels": 4, "num_encoders": 2, "num_residual_blocks": 1},
    PoseHybridCNNSNN: {"cnn_in_channels": 2, "cnn_base_channels": 4, "n_joints": 3, "base_channels": 4},
    PoseHybridCNNRNN: {
        "cnn_in_channels": 2,
        "cnn_base_channels": 4,
        "n_joints": 3,
        "base_channels": 4,
        "num_encoders": 2,
        "num_residual_blocks": 1,
    },
}


def _save(model: pl.LightningModule, path: Path) -> None:
    """A full Lightning checkpoint (loops, callbacks' states) of ``model``, as fit would write it."""
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, callbacks=[RNGStateCheckpoint()])
    trainer.strategy.connect(model)
    trainer.save_checkpoint(path)


def _compiled_inside(module: torch.nn.Module) -> bool:
    # a target may compile itself or, as LIFRecurrent does, the step cells inside it
    return any(m._compiled_call_impl is not None for m in module.modules())


def _is_compiled(model: pl.LightningModule) -> bool:
    return all(_compiled_inside(module) for module in model.compile_targets())


@pytest.mark.parametrize("model_class", list(SMALL), ids=lambda c: c.__name__)
def test_checkpoints_load_compiled_and_uncompiled_with_weights_only(model_class, tmp_path: Path) -> None:
    torch.manual_seed(0)
    compiled = model_class(**SMALL[model_class], compile=True)
    compiled.configure_model()
    assert _is_compiled(compiled)
    eager = model_class(**SMALL[model_class])
    assert list(compiled.state_dict()) == list(eager.state_dict())  # no _orig_mod. prefixes

    _save(compiled, tmp_path / "compiled.ckpt")
    checkpoint = torch.load(tmp_path / "compiled.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["compile"] is True

    # compiled -> eager
    loaded = model_class.load_from_checkpoint(tmp_path / "compiled.ckpt", weights_only=True, compile=False)
    loaded.configure_model()
    assert not any(_compiled_inside(m) for m in loaded.compile_targets())
    for key, value in compiled.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key

    # eager -> compiled
    _save(loaded, tmp_path / "eager.ckpt")
    recompiled = model_class.load_from_checkpoint(tmp_path / "eager.ckpt", weights_only=True, compile=True)
    recompiled.configure_model()
    assert _is_compiled(recompiled)
    for key, value in compiled.state_dict().items():
        assert torch.equal(recompiled.state_dict()[key], value), key


def test_lif_classifier_loaded_eager_computes_what_the_saved_model_computes(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = LIFClassifier(**SMALL[LIFClassifier], v_th=0.05)
    _save(source, tmp_path / "m.ckpt")
    loaded = LIFClassifier.load_from_checkpoint(tmp_path / "m.ckpt", weights_only=True)
    frames = (torch.rand(12, 4, 2, 5, 6) < 0.3).float()
    lengths = torch.full((4,), 12)
    torch.testing.assert_close(loaded(frames, lengths), source(frames, lengths), rtol=0, atol=0)


def _retag_as_gpu(source: Path, target: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rewrite a checkpoint so that its tensors are recorded as CUDA tensors, without a GPU.

    A saved tensor's device is only the location tag of its storage in the file, which is what
    this replaces; loading then goes through the same path as a checkpoint from a GPU run.
    """
    import torch.serialization

    checkpoint = torch.load(source, weights_only=True)
    monkeypatch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
    torch.save(checkpoint, target)
    monkeypatch.undo()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks loading a GPU checkpoint on a CPU-only machine")
def test_a_gpu_checkpoint_loads_on_a_cpu_only_machine(tmp_path: Path, monkeypatch, quick, tiny_digits) -> None:
    from event_lightning.cli import main

    runs = tmp_path / "runs"
    main(["fit", *quick.args(runs, tiny_digits, "--trainer.max_epochs", "1")])
    (trained,) = runs.glob("**/last.ckpt")
    checkpoint = tmp_path / "gpu.ckpt"
    _retag_as_gpu(trained, checkpoint, monkeypatch)
    with pytest.raises(RuntimeError, match="CUDA"):  # the file really asks for a GPU
        torch.load(checkpoint, weights_only=True)
    reference = torch.load(trained, weights_only=True)["state_dict"]
    loaded = LIFClassifier.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=True)
    for key, value in reference.items():
        assert loaded.state_dict()[key].device.type == "cpu" and torch.equal(loaded.state_dict()[key], value)
    # the CLI evaluates and resumes it on a CPU-only machine without being told where it came from
    main(["validate", *quick.args(runs, tiny_digits, "--ckpt_path", str(checkpoint))])
    assert list(runs.glob("**/config_validate.yaml"))
    main(["fit", *quick.args(runs, tiny_digits, "--trainer.max_epochs", "2", "--ckpt_path", str(checkpoint))])
