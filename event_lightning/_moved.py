"""Old import paths kept working for one release after a module moved.

A module that moved leaves a two-line file at its old path::

    from event_lightning._moved import alias_module
    alias_module(__name__)

Importing the old path then warns once (:class:`MovedModuleWarning`, shown by default) and
hands back the new module itself, so ``from old.path import name``, ``old.path.name`` and
class paths in old configs or checkpoints keep resolving to the very same objects. A module
split in several places lists every new home; its old path becomes a read-only view that
looks a name up in each home in turn.

:data:`MOVED_MODULES` is the one list of what moved where; the old paths go in release 0.3.
"""

from __future__ import annotations

import importlib
import sys
import types
import warnings

REMOVED_IN = "0.3"

#: old dotted module path -> new home(s), searched in order for a name.
MOVED_MODULES: dict[str, tuple[str, ...]] = {
    # event_lightning.data: the flat package split into datasets/, standins/ and loading/ (issue #15)
    "event_lightning.data.asl_dvs": (
        "event_lightning.data.datasets.asl_dvs",
        "event_lightning.data.loading.packed_events",
        "event_lightning.data.loading.event_sequences",
    ),
    "event_lightning.data.bad_samples": ("event_lightning.data.loading.bad_samples",),
    "event_lightning.data.classification": ("event_lightning.data.loading.classification_datamodule",),
    "event_lightning.data.collate": ("event_lightning.data.loading.frames_collate",),
    "event_lightning.data.config_checks": ("event_lightning.data.loading.config_checks",),
    "event_lightning.data.dhp19": (
        "event_lightning.data.datasets.dhp19",
        "event_lightning.data.datasets.dhp19.windows",
        "event_lightning.data.datasets.dhp19.sampling",
        "event_lightning.data.datasets.dhp19.recordings",
        "event_lightning.data.datasets.dhp19.batches",
    ),
    "event_lightning.data.dsprites_sequences": (
        "event_lightning.data.datasets.dsprites",
        "event_lightning.data.loading.dsprites_npz",
        "event_lightning.data.standins.dsprites",
    ),
    "event_lightning.data.dvsgesture": (
        "event_lightning.data.datasets.dvsgesture",
        "event_lightning.data.loading.windows",
    ),
    "event_lightning.data.event_samplers": ("event_lightning.data.loading.event_samplers",),
    "event_lightning.data.frame_cache": (
        "event_lightning.data.loading.frame_cache",
        "event_lightning.data.loading.windows",
    ),
    "event_lightning.data.frames": ("event_lightning.data.loading.frames_dataset",),
    "event_lightning.data.image_transforms": ("event_lightning.data.loading.image_transforms",),
    "event_lightning.data.mnist_sequences": (
        "event_lightning.data.datasets.mnist",
        "event_lightning.data.loading.mnist_idx",
        "event_lightning.data.standins.mnist",
    ),
    "event_lightning.data.nmnist": ("event_lightning.data.datasets.nmnist",),
    "event_lightning.data.nmnist_frames": ("event_lightning.data.datasets.nmnist",),
    "event_lightning.data.pokerdvs": ("event_lightning.data.datasets.pokerdvs",),
    "event_lightning.data.prepare": (
        "event_lightning.data.registry",
        "event_lightning.data.preparation",
        "event_lightning.data.inspection",
    ),
    "event_lightning.data.sparse_counts": ("event_lightning.data.loading.sparse_counts",),
    "event_lightning.data.synthetic_asl": ("event_lightning.data.standins.asl_dvs",),
    "event_lightning.data.synthetic_dhp19": (
        "event_lightning.data.standins.dhp19",
        "event_lightning.data.datasets.dhp19",
    ),
    "event_lightning.data.synthetic_digits": ("event_lightning.data.standins.nmnist",),
    "event_lightning.data.synthetic_gestures": ("event_lightning.data.standins.dvsgesture",),
    "event_lightning.data.synthetic_pokerdvs": ("event_lightning.data.standins.pokerdvs",),
}


class MovedModuleWarning(DeprecationWarning):
    """An event_lightning module was imported by a path that goes away in the next release."""


# Deprecations are hidden by default unless raised from __main__; users update configs and
# scripts only when they see them.
warnings.simplefilter("default", MovedModuleWarning)


def _caller_stacklevel() -> int:
    """The stack level of the first frame outside the import machinery and the old module."""
    frame = sys._getframe(2)  # the old module's body
    level = 3
    while frame is not None and (
        frame.f_code.co_filename.startswith("<frozen importlib") or frame.f_globals.get("__name__") in MOVED_MODULES
    ):
        frame = frame.f_back
        level += 1
    return level


def _view_of(old: str, homes: list[types.ModuleType]) -> types.ModuleType:
    view = types.ModuleType(old, f"Moved to {', '.join(home.__name__ for home in homes)}.")

    def __getattr__(name: str) -> object:
        for home in homes:
            if hasattr(home, name):
                return getattr(home, name)
        moved_to = ", ".join(h.__name__ for h in homes)
        raise AttributeError(f"module {old!r} (moved to {moved_to}) has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({name for home in homes for name in dir(home)})

    view.__getattr__ = __getattr__  # type: ignore[method-assign]
    view.__dir__ = __dir__  # type: ignore[method-assign]
    return view


def alias_module(old: str) -> None:
    """Replace the module being imported as ``old`` by its new home(s) from :data:`MOVED_MODULES`."""
    try:
        homes = MOVED_MODULES[old]
    except KeyError:
        raise KeyError(f"{old} calls alias_module but is not listed in event_lightning._moved.MOVED_MODULES") from None
    warnings.warn(
        f"{old} moved to {' / '.join(homes)}; import it from there "
        f"(the old path is removed in event_lightning {REMOVED_IN})",
        MovedModuleWarning,
        stacklevel=_caller_stacklevel(),
    )
    modules = [importlib.import_module(home) for home in homes]
    sys.modules[old] = modules[0] if len(modules) == 1 else _view_of(old, modules)
