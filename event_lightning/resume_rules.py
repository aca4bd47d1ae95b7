"""What a resumed run may change in a model's hyperparameters, per key, for every project model.

A resume rebuilds the model from the config (and command line) and then loads the checkpoint's
weights, optimiser and scheduler states. Each ``model.init_args`` key that differs from the
checkpoint's hyperparameters is one of:

* :data:`OPTIMISER`: learning rates, weight decay, betas, momentum, eps, the learning-rate
  schedule's drop interval and factor. Applied: the restored optimiser's parameter groups (and the
  schedulers' base rates) take the new values (:class:`~event_lightning.callbacks.resume_overrides.
  ResumedOptimiserSettings`); without that the checkpoint's optimiser state would silently win.
* :data:`TRAINING`: loss weights, regularisation (dropout, label smoothing, input noise),
  evaluation-only settings and ``compile``. Applied: the rebuilt module reads them, the weights
  do not depend on them.
* :data:`FIXED`: shapes, neuron dynamics, what the inputs and outputs mean, and settings used only
  at initialisation (which a resume does not run, so a new value would be recorded but unused).
  Refused before anything is written, naming the key and the checkpoint's value.

A class without a table here (a user's own LightningModule) gets :data:`GENERIC_RULES`: the usual
optimiser names apply, ``compile`` applies, every other change is refused.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FIXED",
    "GENERIC_RULES",
    "OPTIMISER",
    "RESUME_RULES",
    "TRAINING",
    "HyperparameterChange",
    "hyperparameter_changes",
    "resume_rules",
]

OPTIMISER, TRAINING, FIXED = "optimiser", "training", "fixed"

_F, _O, _T = FIXED, OPTIMISER, TRAINING
#: class (``module.QualName``) -> {init argument: kind}; a class also follows the tables of its bases.
RESUME_RULES: dict[str, dict[str, str]] = {
    "event_lightning.models.base.CompilableModule": {"compile": _T, "compile_mode": _T},
    "event_lightning.models.lif_classifier.LIFClassifier": {
        "sensor_size": _F, "num_classes": _F, "hidden_features": _F,
        "tau_syn_inv": _F, "tau_mem_inv": _F, "v_th": _F, "alpha": _F,
        "readout_tau_syn_inv": _F, "readout_tau_mem_inv": _F, "dt": _F, "mask_padding": _F, "lr_schedule": _F,
        "lr": _O,
    },
    "event_lightning.models.event2vec.Event2VecClassifier": {
        "num_classes": _F, "sensor_size": _F, "h": _F, "w": _F, "embed": _F, "tpe": _F, "d_model": _F,
        "n_head": _F, "d_feedforward": _F, "n_layers": _F, "t_heads": _F, "offset_coordinate": _F,
        "offset_t": _F, "classify_head_zero_init": _F, "lr_schedule": _F,
        # the pre-trained weights are read at setup, before the resumed weights replace them
        "self_supervised": _F, "embed_pretrained": _F, "pretrained": _F, "learn_head_only": _F,
        "dropout": _T, "dropout_sequence": _T, "coordinate_noise_std": _T, "label_smoothing": _T,
        "lr": _O, "weight_decay": _O,
    },
    "event_lightning.models.hgvae.HybridGuidedVAE": {
        "sensor_size": _F, "num_classes": _F, "n_time_steps": _F, "conv_channels": _F, "pool_sizes": _F,
        "kernel_size": _F, "out_features": _F, "alpha": _F, "beta": _F, "surrogate_slope": _F,
        "warmup_first_step": _F, "dimz": _F, "classifier_hidden": _F, "ngf": _F, "lsuv": _F, "lsuv_rule": _F,
        "vae_beta": _T, "kl_per_batch_count": _T, "class_weight": _T, "target_scale": _T,
        "freeze_guide_in_adversarial": _T, "legacy_zero_grad_steps": _T,
        "learning_rates": _O, "adamax_betas": _O, "adamax_eps": _O, "lr_drop_interval": _O, "lr_drop_factor": _O,
    },
    "event_lightning.models.tvae.TopographicVAE": {
        "n_time_steps": _F, "grouper": _F, "n_caps": _F, "cap_dim": _F, "group_kernel": _F, "n_off_diag": _F,
        "mu_init": _F, "eps": _F, "image_channels": _F, "image_size": _F, "factor_names": _F,
        "n_is_samples": _T, "is_subtract_log_k": _T, "capcorr_factors": _T,
        "lr": _O, "momentum": _O,
    },
    "event_lightning.models.pose.base._PoseModule": {
        "sensor_size": _F, "n_time_steps": _F, "grid_multiple": _F,
        "sigma": _T, "heatmap_border": _T, "eval_steps": _T,
        "lr": _O,
    },
    "event_lightning.models.pose.cnn.PoseCNN": {
        "in_channels": _F, "n_joints": _F, "base_channels": _F, "head_weight_div": _F,
    },
    "event_lightning.models.pose.sequence.PoseSNN": {
        "in_channels": _F, "n_joints": _F, "base_channels": _F, "tau": _F, "v_threshold": _F,
        "surrogate_alpha": _F, "detach_reset": _F,
    },
    "event_lightning.models.pose.sequence.PoseRNN": {
        "in_channels": _F, "n_joints": _F, "base_channels": _F, "num_encoders": _F, "num_residual_blocks": _F,
        "head_weight_div": _F,
    },
    # the pretrained-network checkpoints are read at setup, before the resumed weights replace them
    "event_lightning.models.pose.hybrids.PoseHybridCNNSNN": {
        "cnn_checkpoint": _F, "snn_checkpoint": _F, "cnn_in_channels": _F, "cnn_base_channels": _F,
        "in_channels": _F, "n_joints": _F, "base_channels": _F, "tau": _F, "v_threshold": _F,
        "surrogate_alpha": _F, "detach_reset": _F, "output_decay": _F, "state_init": _F, "residual_output": _F,
        "mp_loss_weight": _T,
    },
    "event_lightning.models.pose.hybrids.PoseHybridCNNRNN": {
        "cnn_checkpoint": _F, "rnn_checkpoint": _F, "cnn_in_channels": _F, "cnn_base_channels": _F,
        "in_channels": _F, "n_joints": _F, "base_channels": _F, "num_encoders": _F, "num_residual_blocks": _F,
        "output_decay": _F, "state_init": _F, "head_weight_div": _F,
    },
}  # fmt: skip

GENERIC_RULES: dict[str, str] = {
    "lr": _O, "learning_rate": _O, "weight_decay": _O, "momentum": _O, "betas": _O, "eps": _O, "compile": _T,
}  # fmt: skip


def _class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def resume_rules(cls: type) -> dict[str, str]:
    """``{init argument: kind}`` for ``cls``: its table merged with its bases' (or :data:`GENERIC_RULES`)."""
    tables = [RESUME_RULES[_class_name(base)] for base in reversed(cls.__mro__) if _class_name(base) in RESUME_RULES]
    if _class_name(cls) not in RESUME_RULES:
        tables.insert(0, GENERIC_RULES)
    rules: dict[str, str] = {}
    for table in tables:
        rules.update(table)
    return rules


@dataclass(frozen=True)
class HyperparameterChange:
    """One ``model.init_args`` key whose value differs from the checkpoint's."""

    key: str
    saved: Any
    given: Any
    kind: str

    def describe(self) -> str:
        return f"model.init_args.{self.key} (checkpoint: {self.saved!r}, now: {self.given!r})"


def _plain(value: Any) -> Any:
    """Tuples as lists, mappings as dicts, so that a YAML list equals the checkpoint's tuple."""
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _same(a: Any, b: Any) -> bool:
    a, b = _plain(a), _plain(b)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def hyperparameter_changes(cls: type, saved: Mapping[str, Any], given: Mapping[str, Any]) -> list[HyperparameterChange]:
    """Keys of ``given`` (the resumed model's hyperparameters) that differ from ``saved`` (the checkpoint's).

    A key the checkpoint lacks (an argument added since it was written) counts as its signature
    default there. Keys starting with ``_`` (LightningCLI's bookkeeping) are not hyperparameters.
    """
    defaults = {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if p.default is not inspect.Parameter.empty
    }
    rules = resume_rules(cls)
    changes = []
    for key, value in given.items():
        if key.startswith("_") or (key not in saved and key not in defaults):
            continue
        old = saved[key] if key in saved else defaults[key]
        if not _same(old, value):
            changes.append(HyperparameterChange(key, old, value, rules.get(key, FIXED)))
    return changes
