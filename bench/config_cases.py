"""Every config of ``config/`` made runnable offline with its real shapes: the table the GPU
preflight (:mod:`bench.gpu_preflight`) and the cross-method tests (``tests/gpu``) share.

A :class:`ConfigCase` switches a config's DataModule to its synthetic stand-in (written in the real
on-disk format under a shared folder of the work directory), keeps everything that shapes the
networks -- time steps, sensor and crop, classes, network widths, sequence lengths -- and shrinks
only the number of recordings. :func:`write_case_config` writes the merged YAML, which the real
entrypoint then runs (``python train_script.py fit --config <it>``).

``graph`` groups configs whose compiled graphs are the same: they differ only in settings that do
not reach a network (learning rates, epochs, logging, which transformations a sequence shows, the
dataset behind the same shapes). One config per group is enough to check compilation.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent

# Stand-in sizes shared by every config of a dataset (so the files are written once per work folder).
# 40: the quickstart holds 10 % out for validation, 2 batches of 2 for the checks that run 2 validation steps
_NMNIST_DIGITS = {"n_train": 40, "n_test": 12}
_POKER = {"train_per_class": 2, "test_per_class": 2}
_GESTURES = {"train_users": [1], "test_users": [24], "lightings": ["led", "natural"], "duration_us": 600_000}
_ASL = {"samples_per_class": 3, "events_per_sample": 1500, "seed": 0}
# 600 ms: the hybrids (100 ms windows every 50 ms after the CNN's first frame) need 3 batches of 2 per DDP rank
_DHP19 = {"subjects": [1, 13], "movements_per_subject": 1, "duration_ms": 600}
_SYNTHETIC_DHP19 = "event_lightning.data.datasets.dhp19.SyntheticDHP19DataModule"


@dataclass(frozen=True)
class ConfigCase:
    """One config and how to run it offline.

    Attributes:
        config: the YAML under ``config/``.
        method: ``lif``, ``hgvae``, ``event2vec``, ``pose`` or ``tvae``.
        graph: configs with the same key compile the same graphs (see the module docstring).
        standin: folder of the work directory holding this dataset's stand-in files.
        data: ``data.init_args`` overrides (stand-in on, few recordings; shapes untouched).
        data_class: a replacement DataModule class (the real DHP19 configs take the stand-in's class).
        model: ``model.init_args`` overrides (a hybrid's pre-trained CNN checkpoint and an Event2Vec
            fine-tuning's pre-trained checkpoint are left out).
        precisions: mixed precisions to check (Event2Vec's reference trains in fp16).
    """

    config: str
    method: str
    graph: str
    standin: str
    data: Mapping[str, Any] = field(default_factory=dict)
    data_class: str | None = None
    model: Mapping[str, Any] = field(default_factory=dict)
    precisions: tuple[str, ...] = ("bf16-mixed",)

    @property
    def name(self) -> str:
        return Path(self.config).stem

    @property
    def synthetic(self) -> bool:
        """Whether the config itself trains on a stand-in (the configs HostSyncGuard checks)."""
        return "synthetic" in self.name or self.name.startswith("quickstart")


def _lif(config: str, standin: str, data: Mapping[str, Any]) -> ConfigCase:
    # The compiled cells see [B, 100] state only: every LIF config compiles the same two graphs.
    return ConfigCase(config, "lif", "lif-hidden100", standin, data)


def _hgvae_nmnist(config: str, graph: str) -> ConfigCase:
    data = {"synthetic": True, "download": False, "synthetic_config": _NMNIST_DIGITS, "num_workers": 0}
    return ConfigCase(config, "hgvae", graph, "nmnist_hgvae", data)


def _hgvae_gestures(config: str, graph: str) -> ConfigCase:
    data = {"synthetic": True, "download": False, "synthetic_config": _GESTURES, "num_workers": 0}
    return ConfigCase(config, "hgvae", graph, "dvsgesture", data)


def _event2vec(config: str, graph: str, classes: int, finetune: bool = False) -> ConfigCase:
    data = {"synthetic": {**_ASL, "num_classes": classes}, "num_workers": 0, "persistent_workers": False}
    model = {"pretrained": None} if finetune else {}
    # one folder per class count: the stand-in rewrites its folder when its settings change
    return ConfigCase(
        config, "event2vec", graph, f"asl_dvs_{classes}", data, model=model, precisions=("bf16-mixed", "16-mixed")
    )


def _pose(config: str, graph: str, hybrid: bool = False, real: bool = False) -> ConfigCase:
    data = {**_DHP19, "num_workers": 0}
    model = {"cnn_checkpoint": None} if hybrid else {}
    return ConfigCase(config, "pose", graph, "dhp19", data, _SYNTHETIC_DHP19 if real else None, model)


def _tvae(config: str, graph: str, standin: str) -> ConfigCase:
    data: dict[str, Any] = {"synthetic": True, "num_workers": 0}
    if standin == "dsprites":
        data["n_val_sequences"] = 16
    return ConfigCase(config, "tvae", graph, standin, data)


CASES: tuple[ConfigCase, ...] = (
    _lif("config/quickstart.yaml", "nmnist_frames", _NMNIST_DIGITS),
    _lif("config/quickstart_augmented.yaml", "nmnist_frames", _NMNIST_DIGITS),
    _lif("config/lif_pokerdvs.yaml", "pokerdvs", {"synthetic": True, "synthetic_config": _POKER}),
    _lif("config/lif_pokerdvs_synthetic_figures.yaml", "pokerdvs", {"synthetic_config": _POKER}),
    _hgvae_nmnist("config/hgvae_nmnist.yaml", "hgvae-nmnist-12-30-T100"),
    _hgvae_nmnist("config/hgvae_nmnist_synthetic.yaml", "hgvae-nmnist-8-16-T40"),
    _hgvae_gestures("config/hgvae_dvsgesture.yaml", "hgvae-gesture-32-64-128-T200"),
    _hgvae_gestures("config/hgvae_dvsgesture_synthetic.yaml", "hgvae-gesture-8-16-32-T60"),
    _hgvae_gestures("config/hgvae_dvsgesture_lighting.yaml", "hgvae-light-32-64-64-128-T200"),
    _hgvae_gestures("config/hgvae_dvsgesture_lighting_synthetic.yaml", "hgvae-light-8-16-16-32-T60"),
    _event2vec("config/event2vec_asl_dvs.yaml", "e2v-256x16-24cls", 24),
    _event2vec("config/event2vec_synthetic.yaml", "e2v-64x4-6cls", 6),
    _event2vec("config/event2vec_pretrain_asl_dvs.yaml", "e2v-masked-256x16-naive", 24),
    _event2vec("config/event2vec_pretrain_synthetic.yaml", "e2v-masked-64x4-naive", 6),
    _event2vec("config/event2vec_finetune_asl_dvs.yaml", "e2v-naive-256x16-24cls", 24, finetune=True),
    _event2vec("config/event2vec_finetune_synthetic.yaml", "e2v-naive-64x4-6cls", 6, finetune=True),
    _pose("config/pose_cnn_dhp19.yaml", "pose-cnn-32-256px", real=True),
    _pose("config/pose_cnn_synthetic.yaml", "pose-cnn-8-32px"),
    _pose("config/pose_snn_dhp19.yaml", "pose-snn-32-256px", real=True),
    _pose("config/pose_snn_synthetic.yaml", "pose-snn-8-32px"),
    _pose("config/pose_rnn_dhp19.yaml", "pose-rnn-32-256px", real=True),
    _pose("config/pose_rnn_synthetic.yaml", "pose-rnn-8-32px"),
    _pose("config/pose_hybrid_cnn_snn_dhp19.yaml", "pose-cnn-snn-32-256px", hybrid=True, real=True),
    _pose("config/pose_hybrid_cnn_snn_synthetic.yaml", "pose-cnn-snn-8-32px", hybrid=True),
    _pose("config/pose_hybrid_cnn_rnn_dhp19.yaml", "pose-cnn-rnn-32-256px", hybrid=True, real=True),
    _pose("config/pose_hybrid_cnn_rnn_synthetic.yaml", "pose-cnn-rnn-8-32px", hybrid=True),
    # TVAE: the grouper (kind, capsules, kernel, off-diagonals), image size and channels and the
    # sequence length shape it; which transformations a sequence shows (single, dual, perspective)
    # only changes the data.
    _tvae("config/tvae_Lpartial_mnist_synthetic.yaml", "tvae-shift-18x18-k13-rgb28-S18", "mnist"),
    _tvae("config/tvae_Lpartial_mnist.yaml", "tvae-shift-18x18-k13-rgb28-S18", "mnist"),
    _tvae("config/tvae_Lpartial_mnist_generalization.yaml", "tvae-shift-18x18-k13-rgb28-S18", "mnist"),
    _tvae("config/tvae_Lpartial_perspective_mnist.yaml", "tvae-shift-18x18-k13-rgb28-S18", "mnist"),
    _tvae("config/tvae_Lpartial_rotcolor_mnist.yaml", "tvae-shift-18x18-k13-rgb28-S18", "mnist"),
    _tvae("config/tvae_Lshort_mnist.yaml", "tvae-shift-18x18-k5-rgb28-S18", "mnist"),
    _tvae("config/tvae_Lhalf_mnist.yaml", "tvae-shift-18x18-k18-rgb28-S18", "mnist"),
    _tvae("config/tvae_L0_mnist.yaml", "tvae-stationary-18x18-k1x3-rgb28-S18", "mnist"),
    _tvae("config/bubbles_mnist.yaml", "tvae-stationary-18x18-k5x3-rgb28-S18", "mnist"),
    _tvae("config/bubbles_mnist_synthetic.yaml", "tvae-stationary-18x18-k5x3-rgb28-S18", "mnist"),
    _tvae("config/nontvae_mnist.yaml", "tvae-none-18x18-rgb28-S18", "mnist"),
    _tvae("config/nontvae_mnist_synthetic.yaml", "tvae-none-18x18-rgb28-S18", "mnist"),
    _tvae("config/tvae_2d_mnist.yaml", "tvae-torus-1x324-k5-grey28-S1", "mnist"),
    _tvae("config/tvae_2d_mnist_synthetic.yaml", "tvae-torus-1x324-k5-grey28-S1", "mnist"),
    _tvae("config/tvae_Lpartial_dsprites.yaml", "tvae-shift-15x15-k10-grey64-S15", "dsprites"),
    _tvae("config/tvae_Lpartial_dsprites_synthetic.yaml", "tvae-shift-15x15-k10-grey64-S15", "dsprites"),
    _tvae("config/tvae_Lshort_dsprites.yaml", "tvae-shift-15x15-k5-grey64-S15", "dsprites"),
    _tvae("config/tvae_Lhalf_dsprites.yaml", "tvae-shift-15x15-k15-grey64-S15", "dsprites"),
    _tvae("config/tvae_L0_dsprites.yaml", "tvae-stationary-15x15-k1x3-grey64-S15", "dsprites"),
    _tvae("config/bubbles_dsprites.yaml", "tvae-stationary-15x15-k5-grey64-S15", "dsprites"),
    _tvae("config/nontvae_dsprites.yaml", "tvae-none-15x15-grey64-S15", "dsprites"),
    _tvae("config/nontvae_dsprites_synthetic.yaml", "tvae-none-15x15-grey64-S15", "dsprites"),
)


# One config per method, each trained on its own stand-in.
ONE_PER_METHOD = (
    "quickstart",
    "hgvae_nmnist_synthetic",
    "event2vec_synthetic",
    "pose_hybrid_cnn_snn_synthetic",
    "tvae_Lpartial_mnist_synthetic",
)


def case_named(name: str) -> ConfigCase:
    """The case of ``config/<name>.yaml``."""
    for case in CASES:
        if case.name == name:
            return case
    raise KeyError(f"no config/{name}.yaml in the case table (bench/config_cases.py)")


def one_per_graph(cases: tuple[ConfigCase, ...] = CASES) -> list[ConfigCase]:
    """The first case of every ``graph`` group (preferring a config that is itself synthetic)."""
    chosen: dict[str, ConfigCase] = {}
    for case in sorted(cases, key=lambda c: not c.synthetic):
        chosen.setdefault(case.graph, case)
    return sorted(chosen.values(), key=lambda c: cases.index(c))


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in overrides.items():
        nested = isinstance(value, Mapping) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if nested else copy.deepcopy(value)
    return out


def case_config(case: ConfigCase, workdir: Path, batch_size: int | None = None) -> dict[str, Any]:
    """The config of ``case`` with its overrides, its stand-in under ``workdir / "data"`` and its
    logs under ``workdir / "runs"``; ``batch_size`` replaces the config's (and the eval batch)."""
    config = yaml.safe_load((REPO_ROOT / case.config).read_text())
    data = config["data"]
    if case.data_class is not None:
        data["class_path"] = case.data_class
    init_args = _merge(data.get("init_args") or {}, case.data)
    init_args["root"] = str(workdir / "data" / case.standin)
    if batch_size is not None:
        init_args["batch_size"] = batch_size
        if "eval_batch_size" in init_args:
            init_args["eval_batch_size"] = batch_size
    data["init_args"] = init_args
    config["model"]["init_args"] = _merge(config["model"].get("init_args") or {}, case.model)
    logger = config.setdefault("trainer", {}).get("logger")
    if isinstance(logger, dict):
        logger.setdefault("init_args", {})["save_dir"] = str(workdir / "runs")
    return config


def write_case_config(case: ConfigCase, workdir: Path, batch_size: int | None = None) -> Path:
    """:func:`case_config` written as ``workdir / "configs" / <name>.yaml``; returns the path."""
    path = workdir / "configs" / f"{case.name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(case_config(case, workdir, batch_size), sort_keys=False))
    return path
