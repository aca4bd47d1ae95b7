"""Console lines a user cannot act on, removed one by one by their exact text.

Only these messages are dropped; every other warning and log line of Lightning and torch still
shows. Each rule names the library version that prints it, so it can go once that version does.
"""

from __future__ import annotations

import logging
import warnings

# pytorch-lightning >= 2.6 logs an advertisement for its cloud logger when a run has none.
LITLOGGER_TIP = "💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger]"

# torch 2.13 deprecated LeafSpec; pytorch-lightning 2.6 still builds one while moving every batch.
LEAFSPEC_DEPRECATION = r"`isinstance\(treespec, LeafSpec\)` is deprecated"

# rank_zero_info writes through the rank-zero logger of whichever of the two packages set it last.
_RANK_ZERO_LOGGERS = ("pytorch_lightning.utilities.rank_zero", "lightning_fabric.utilities.rank_zero")


class _DropLitLoggerTip(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(LITLOGGER_TIP)


def quiet_known_noise() -> None:
    """Drop the LitLogger tip and the ``LeafSpec`` deprecation warning from the console (idempotent)."""
    warnings.filterwarnings("ignore", message=LEAFSPEC_DEPRECATION, category=FutureWarning)
    for name in _RANK_ZERO_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropLitLoggerTip) for f in logger.filters):
            logger.addFilter(_DropLitLoggerTip())
