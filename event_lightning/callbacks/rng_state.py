"""Random-number streams that survive a checkpoint, for exact resumes.

``seed_everything`` seeds the torch, numpy and Python generators once, when a run starts. A
resumed run therefore restarts those streams from the seed, not from where the interrupted run
left them, so a model that draws random numbers while training (the HG-VAE's reparameterisation,
a random window start, dropout) would draw different numbers after ``--resume`` than the same run
trained straight through. :class:`RNGStateCheckpoint` stores the three generators' states (and
CUDA's, when initialised) in every checkpoint and puts them back as soon as Lightning restores
the callbacks. Between that moment and the creation of the resumed epoch's DataLoader iterator
(which draws the shuffling seed) Lightning only runs setup hooks and a sanity check it wraps in
``isolate_rng``, which is also all an uninterrupted run does between writing an end-of-epoch
checkpoint and starting the next epoch's iterator, so the streams continue exactly where the
checkpoint was written.

The states are stored as tensors and plain Python values, so checkpoints still load with
``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch


def capture_rng_state() -> dict[str, Any]:
    """The torch CPU (and initialised CUDA), numpy-global and Python ``random`` generator states."""
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    version, python_state, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": str(name),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "position": int(position),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {"version": int(version), "state": list(python_state), "gauss_next": gauss_next},
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Put back the generator states captured by :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            numpy_state["name"],
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["position"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    python_state = state["python"]
    random.setstate((python_state["version"], tuple(python_state["state"]), python_state["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        saved = state["cuda"]
        # A checkpoint from more GPUs than this machine has: restore the ones that exist.
        torch.cuda.set_rng_state_all(saved[: torch.cuda.device_count()])


class RNGStateCheckpoint(pl.Callback):
    """Saves the random generators with each checkpoint; restores them when a run resumes.

    Args:
        restore: put the saved states back on resume (``False`` keeps ``seed_everything``'s fresh
            streams, as plain Lightning does).
    """

    def __init__(self, restore: bool = True) -> None:
        self.restore = restore

    def state_dict(self) -> dict[str, Any]:
        # Called while a checkpoint is written: the streams as they are at that moment.
        return {"rng": capture_rng_state()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Lightning restores callback states only when fitting, i.e. on --resume / fit --ckpt_path.
        if self.restore and "rng" in state_dict:
            restore_rng_state(state_dict["rng"])
