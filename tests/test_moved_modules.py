"""Every moved module still imports from its old path, warns, and gives the very same objects."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import event_lightning
from event_lightning._moved import MOVED_MODULES, MovedModuleWarning

PACKAGE_ROOT = Path(event_lightning.__file__).resolve().parent


def _forget(name: str) -> None:
    sys.modules.pop(name, None)
    parent, _, child = name.rpartition(".")
    if parent in sys.modules and child in vars(sys.modules[parent]):
        delattr(sys.modules[parent], child)


def test_old_paths_are_listed_and_left_no_file_behind():
    assert MOVED_MODULES, "nothing is listed as moved"
    for old in MOVED_MODULES:
        relative = Path(*old.split(".")[1:])
        assert not (PACKAGE_ROOT / relative.with_suffix(".py")).exists(), old
        assert not (PACKAGE_ROOT / relative / "__init__.py").exists(), old


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_old_path_warns_and_resolves_to_the_new_objects(old):
    homes = [importlib.import_module(home) for home in MOVED_MODULES[old]]
    _forget(old)
    with pytest.warns(MovedModuleWarning, match=MOVED_MODULES[old][0].replace(".", r"\.")) as caught:
        module = importlib.import_module(old)
    assert caught[0].filename == __file__  # the warning points at the importing line
    names = (name for home in homes for name in getattr(home, "__all__", None) or vars(home))
    public = {name for name in names if not name.startswith("_")}
    assert public
    for name in public:
        expected = next(getattr(home, name) for home in homes if hasattr(home, name))
        assert getattr(module, name) is expected, f"{old}.{name}"
    # one home: the old path IS the new module, whose error names the new path
    with pytest.raises(AttributeError, match=(old if len(homes) > 1 else MOVED_MODULES[old][0]).replace(".", r"\.")):
        module.__getattribute__("surely_not_a_name") if len(homes) == 1 else module.surely_not_a_name


def test_an_old_class_path_in_a_fresh_process_warns_once_and_loads():
    old = "event_lightning.data.nmnist_frames"
    code = (
        f"import importlib; m = importlib.import_module({old!r}); importlib.import_module({old!r}); "
        "print(m.NMNISTFramesDataModule.__module__)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "event_lightning.data.datasets.nmnist"
    assert result.stderr.count("MovedModuleWarning") == 1, result.stderr
    assert "moved to event_lightning.data.datasets.nmnist" in result.stderr
