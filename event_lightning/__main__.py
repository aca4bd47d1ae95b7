"""``event-lightning`` (the console command) and ``python -m event_lightning``.

``event-lightning {fit,validate,test,predict} ...`` is ``python train_script.py ...`` (the
LightningCLI, :func:`event_lightning.cli.main`); ``event-lightning data ...`` is ``python -m
event_lightning.data ...`` and ``event-lightning export ...`` is ``python -m event_lightning.export
...``. ``--config NAME`` finds the configs that come with the package from any working directory.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

PROGRAM = "event-lightning"
OVERVIEW = f"""{PROGRAM}: train, evaluate and export event-camera and spiking models.

  {PROGRAM} fit|validate|test|predict --config quickstart [overrides]   (LightningCLI)
  {PROGRAM} data prepare|inspect DATASET --root DIR [--synthetic]
  {PROGRAM} export --ckpt_path CKPT --output FILE.nir

The LightningCLI's own help follows.
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run one subcommand; returns its exit status (LightningCLI runs exit through SystemExit)."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else ""
    if command == "data":
        from event_lightning.data.__main__ import main as data_main

        return data_main(args[1:], prog=f"{PROGRAM} data")
    if command == "export":
        from event_lightning.export import main as export_main

        return export_main(args[1:], prog=f"{PROGRAM} export")
    if command in ("", "-h", "--help"):
        print(OVERVIEW)
    from event_lightning.cli import main as cli_main

    if argv is None:
        sys.argv[0] = PROGRAM  # the LightningCLI's usage lines name the program by it
        cli_main()
    else:
        cli_main(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
