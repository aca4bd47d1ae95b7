"""The session's work folder of the cross-method GPU-readiness tests (see ``gpu_selection``)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def gpu_workdir(tmp_path_factory) -> Path:
    """One folder for every run of the session: stand-ins under ``data/`` (written once), logs under ``runs/``."""
    return tmp_path_factory.mktemp("gpu_checks")
