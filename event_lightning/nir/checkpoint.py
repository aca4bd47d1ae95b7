"""Checkpoint -> LightningModule -> its spiking network -> NIR graph.

Used by ``python -m event_lightning.export``.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nir
import pytorch_lightning as pl
import torch
import yaml

from event_lightning.nir.decolle import export_decolle_encoder
from event_lightning.nir.lif import export_lif_classifier
from event_lightning.nir.pose import POSE_DEFAULT_OUTPUTS, export_pose_snn
from event_lightning.nn.hgvae import HybridGuidedVAENet
from event_lightning.nn.lif import LIFClassifierNet
from event_lightning.nn.pose.hybrid import HybridCNNSNN
from event_lightning.nn.pose.snn_unet import SpikingPoseUNet

__all__ = ["export_checkpoint", "export_lightning_module", "load_lightning_module", "module_class_path"]


def module_class_path(ckpt_path: str | Path, hyper_parameters: dict[str, Any]) -> str:
    """The LightningModule's import path: ``_class_path`` in the checkpoint's hyperparameters
    (written by our LightningCLI), else ``model.class_path`` of the run's ``config.yaml`` (the
    folder above ``checkpoints/``)."""
    class_path = hyper_parameters.get("_class_path")
    if class_path:
        return str(class_path)
    ckpt_path = Path(ckpt_path)
    for folder in (ckpt_path.parent, ckpt_path.parent.parent):
        config = folder / "config.yaml"
        if config.is_file():
            model = (yaml.safe_load(config.read_text()) or {}).get("model") or {}
            if isinstance(model, dict) and model.get("class_path"):
                return str(model["class_path"])
    raise ValueError(
        f"{ckpt_path}: cannot tell which LightningModule wrote this checkpoint: its hyper_parameters have "
        "no '_class_path' and no config.yaml with model.class_path lies next to it or one folder up; "
        "pass model_class (--model_class)"
    )


def _import_class(class_path: str) -> type[pl.LightningModule]:
    module_name, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), name)
    except (ImportError, AttributeError, ValueError) as error:
        raise ValueError(f"cannot import the LightningModule class {class_path!r}: {error}") from error
    if not (isinstance(cls, type) and issubclass(cls, pl.LightningModule)):
        raise ValueError(f"{class_path!r} is not a LightningModule class")
    return cls


def load_lightning_module(ckpt_path: str | Path, model_class: str | None = None) -> pl.LightningModule:
    """Load a Lightning checkpoint on the CPU in eval mode (class from ``model_class`` or the checkpoint)."""
    ckpt_path = Path(ckpt_path)
    if not ckpt_path.is_file():
        raise FileNotFoundError(f"checkpoint {ckpt_path} does not exist")
    checkpoint = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    if "state_dict" not in checkpoint:
        raise ValueError(f"{ckpt_path}: not a Lightning checkpoint (no 'state_dict' key; found {sorted(checkpoint)})")
    hyper_parameters = checkpoint.get("hyper_parameters") or {}
    cls = _import_class(model_class or module_class_path(ckpt_path, hyper_parameters))
    model = cls.load_from_checkpoint(ckpt_path, map_location="cpu")
    return model.eval()


def export_lightning_module(
    model: pl.LightningModule,
    dt: float | None = None,
    input_shape: Sequence[int] | None = None,
    pose_outputs: Sequence[str] = POSE_DEFAULT_OUTPUTS,
    source: str = "the model",
) -> nir.NIRGraph:
    """The NIR graph of ``model``'s spiking network (``model.net``, or its spiking part).

    * LIF classifier: the whole network, ``dt`` from the model (an explicit ``dt`` must agree).
    * HG-VAE: the DECOLLE encoder (``dt`` default 1 ms, the frame length of the configs).
    * Pose SNN and hybrid CNN-SNN: the SNN's encoder half (see :mod:`event_lightning.nir.pose`),
      ``dt`` default 1 ms, ``input_shape`` default ``(in_channels, H, W)`` from ``sensor_size``.

    Raises:
        ValueError: naming ``source`` when the model has no spiking network.
    """
    net = getattr(model, "net", None)
    hparams = dict(getattr(model, "hparams", {}) or {})
    sensor = hparams.get("sensor_size")
    if isinstance(net, LIFClassifierNet):
        own_dt = net.lif.step.dt
        if dt is not None and abs(dt - own_dt) > 1e-12:
            raise ValueError(f"{source}: the LIF classifier was trained with dt={own_dt} s; --dt {dt} would change it")
        if input_shape is None and sensor is not None:
            width, height, polarities = (int(s) for s in sensor)
            input_shape = (polarities, height, width)
        return export_lif_classifier(net, input_shape)
    if isinstance(net, HybridGuidedVAENet):
        return export_decolle_encoder(net.encoder, 1e-3 if dt is None else dt)
    snn = net.snn if isinstance(net, HybridCNNSNN) else net
    if isinstance(snn, SpikingPoseUNet):
        if input_shape is None:
            if sensor is None:
                raise ValueError(f"{source}: the pose model stores no sensor_size; give the input shape (C, H, W)")
            width, height = int(sensor[0]), int(sensor[1])
            input_shape = (snn.static_conv.conv.in_channels, height, width)
        return export_pose_snn(snn, input_shape, 1e-3 if dt is None else dt, pose_outputs)
    raise ValueError(
        f"{source}: {type(model).__name__} has no spiking network to export to NIR "
        "(exportable: LIFClassifier, HybridGuidedVAE, PoseSNN, PoseHybridCNNSNN)"
    )


def export_checkpoint(
    ckpt_path: str | Path,
    output: str | Path,
    dt: float | None = None,
    input_shape: Sequence[int] | None = None,
    pose_outputs: Sequence[str] = POSE_DEFAULT_OUTPUTS,
    model_class: str | None = None,
) -> nir.NIRGraph:
    """Load ``ckpt_path``, export its spiking network, ``nir.write`` it to ``output``; return the graph."""
    model = load_lightning_module(ckpt_path, model_class)
    graph = export_lightning_module(model, dt, input_shape, pose_outputs, source=f"checkpoint {ckpt_path}")
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    nir.write(output, graph)
    return graph
