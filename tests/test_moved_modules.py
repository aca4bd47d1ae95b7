"""Every moved module still imports from its old path, warns, and gives the very same objects."""

from __future__ import annotations

import importlib
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


def _old_path_files() -> set[str]:
    names = set()
    for path in PACKAGE_ROOT.rglob("*.py"):
        if "alias_module(__name__)" in path.read_text().splitlines():  # the call itself, not _moved's docstring
            parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
            names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_every_old_path_file_is_listed_and_every_listed_path_has_its_file():
    assert MOVED_MODULES, "nothing is listed as moved"
    assert _old_path_files() == set(MOVED_MODULES)


@pytest.mark.parametrize("old", sorted(MOVED_MODULES))
def test_old_path_warns_and_resolves_to_the_new_objects(old):
    homes = [importlib.import_module(home) for home in MOVED_MODULES[old]]
    _forget(old)
    with pytest.warns(MovedModuleWarning, match=MOVED_MODULES[old][0].replace(".", r"\.")):
        module = importlib.import_module(old)
    names = (name for home in homes for name in getattr(home, "__all__", None) or vars(home))
    public = {name for name in names if not name.startswith("_")}
    assert public
    for name in public:
        expected = next(getattr(home, name) for home in homes if hasattr(home, name))
        assert getattr(module, name) is expected, f"{old}.{name}"
    # one home: the old path IS the new module, whose error names the new path
    with pytest.raises(AttributeError, match=(old if len(homes) > 1 else MOVED_MODULES[old][0]).replace(".", r"\.")):
        module.__getattribute__("surely_not_a_name") if len(homes) == 1 else module.surely_not_a_name
