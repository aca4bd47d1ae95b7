"""Old import paths kept working for one release after a module moved.

:data:`MOVED_MODULES` lists every module that moved and its new home(s). ``import
event_lightning`` puts a finder on ``sys.meta_path`` that answers exactly those old names: no
file stays behind at an old path, so the package folders show only where code lives now.
Importing an old path warns once (:class:`MovedModuleWarning`, shown by default) and hands back
the new module itself, so ``from old.path import name``, ``old.path.name``, ``mock.patch`` of
``old.path.name`` and class paths in old configs or checkpoints keep resolving to the very same
objects. A module split in several places lists every new home; its old path becomes a
read-only view that looks a name up in each home in turn.

The old paths go in release 0.3.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
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
    """The ``stacklevel`` that makes a warning point at the line that imported the old path.

    ``warnings.warn`` itself steps over the frozen importlib frames, so only the frames it counts
    are counted here: this module's and ``importlib.import_module``'s.
    """
    frame, level = sys._getframe(2), 2  # the frame calling create_module's caller
    while frame is not None:
        filename = frame.f_code.co_filename
        if "importlib" in filename and "_bootstrap" in filename:
            frame = frame.f_back
            continue
        if filename != importlib.__file__:
            return level
        frame, level = frame.f_back, level + 1
    return level


def _view_of(old: str, homes: list[types.ModuleType]) -> types.ModuleType:
    moved_to = ", ".join(home.__name__ for home in homes)
    view = types.ModuleType(old, f"Moved to {moved_to}.")

    def __getattr__(name: str) -> object:
        for home in homes:
            if hasattr(home, name):
                return getattr(home, name)
        raise AttributeError(f"module {old!r} (moved to {moved_to}) has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({name for home in homes for name in dir(home)})

    view.__getattr__ = __getattr__  # type: ignore[method-assign]
    view.__dir__ = __dir__  # type: ignore[method-assign]
    return view


class _MovedModuleLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        homes = MOVED_MODULES[spec.name]
        warnings.warn(
            f"{spec.name} moved to {' / '.join(homes)}; import it from there "
            f"(the old path is removed in event_lightning {REMOVED_IN})",
            MovedModuleWarning,
            stacklevel=_caller_stacklevel(),
        )
        modules = [importlib.import_module(home) for home in homes]
        return modules[0] if len(modules) == 1 else _view_of(spec.name, modules)

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the module handed back is already imported."""


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED_MODULES:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MovedModuleLoader())


def install() -> None:
    """Put the old-path finder first on ``sys.meta_path`` (once; ``import event_lightning`` does it)."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _MovedModuleFinder())
