"""Old option spellings of the ``data`` and ``export`` commands, kept for one release.

The commands spell options as the LightningCLI does (``--max_samples``, ``--ckpt_path``,
``--input_shape``), so one style works across ``event-lightning fit|data|export``.
"""

from __future__ import annotations

import argparse
import warnings
from typing import Any

REMOVED_IN = "0.3"


class DeprecatedSpelling(argparse.Action):
    """An argparse action for an old spelling of an option: stores the value under ``dest`` like
    the new one and warns (``FutureWarning``, shown by default) with the spelling to use."""

    def __call__(
        self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: str = ""
    ) -> None:
        new = "--" + self.dest
        warnings.warn(
            f"{option_string} is deprecated and goes in {REMOVED_IN}: spell it {new}", FutureWarning, stacklevel=2
        )
        setattr(namespace, self.dest, values)
