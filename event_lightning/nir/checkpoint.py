"""Checkpoint -> LightningModule -> its spiking network -> NIR graph.

Used by ``python -m event_lightning.export``.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nir
import pytorch_lightning as pl
import yaml

from event_lightning.checkpoint_reading import (
    CheckpointError,
    check_trusted_class_path,
    import_trusted_class,
    read_checkpoint,
)
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
    folder above ``checkpoints/``).

    Raises:
        UntrustedClassError: the path found lies outside this package (the checkpoint and a
            config.yaml beside it may come from anyone; a class of your own goes in ``model_class``).
    """
    class_path = hyper_parameters.get("_class_path")
    if class_path:
        return check_trusted_class_path(class_path, f"checkpoint {ckpt_path} (hyper_parameters._class_path)")
    ckpt_path = Path(ckpt_path)
    for folder in (ckpt_path.parent, ckpt_path.parent.parent):
        config = folder / "config.yaml"
        if config.is_file():
            model = (yaml.safe_load(config.read_text()) or {}).get("model") or {}
            if isinstance(model, dict) and model.get("class_path"):
                return check_trusted_class_path(model["class_path"], f"{config} (model.class_path)")
    raise ValueError(
        f"{ckpt_path}: cannot tell which LightningModule wrote this checkpoint: its hyper_parameters have "
        "no '_class_path' and no config.yaml with model.class_path lies next to it or one folder up; "
        "pass model_class (--model_class)"
    )


def load_lightning_module(ckpt_path: str | Path, model_class: str | None = None) -> pl.LightningModule:
    """Load a Lightning checkpoint on the CPU in eval mode.

    The class is ``model_class`` (the caller's choice, imported as given) or the one the checkpoint
    names, imported only when it belongs to this package (:mod:`event_lightning.checkpoint_reading`).

    Raises:
        CheckpointError: unreadable file, not a Lightning checkpoint, or a class outside the allow-list.
    """
    checkpoint = read_checkpoint(ckpt_path)
    if "state_dict" not in checkpoint:
        raise CheckpointError(
            f"{ckpt_path}: not a Lightning checkpoint (no 'state_dict' key; found {sorted(map(str, checkpoint))})"
        )
    hyper_parameters = dict(checkpoint.get("hyper_parameters") or {})
    class_path = model_class or module_class_path(ckpt_path, hyper_parameters)
    cls = import_trusted_class(class_path, pl.LightningModule, f"checkpoint {ckpt_path}", trusted=[model_class or ""])
    # the instantiator and class path a checkpoint names are not used: the class is the one checked above
    init_args = {k: v for k, v in hyper_parameters.items() if not k.startswith("_")}
    model = cls(**_accepted(cls, init_args))
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()


def _accepted(cls: type, init_args: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``init_args`` that ``cls.__init__`` takes (all when it takes ``**kwargs``)."""
    parameters = inspect.signature(cls.__init__).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return init_args
    return {k: v for k, v in init_args.items() if k in parameters}


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
