"""``python -m event_lightning.data {prepare,inspect} <dataset> --root DIR`` (also ``event-lightning data``).

The datasets are those of :mod:`event_lightning.data.registry`; ``prepare`` is
:mod:`event_lightning.data.preparation`, ``inspect`` :mod:`event_lightning.data.inspection`.
Options are spelt as in the LightningCLI (``--max_samples``, like ``--ckpt_path``); the old
``--max-samples`` still works, with a deprecation message, until 0.3.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from event_lightning.cli_flags import DeprecatedSpelling
from event_lightning.data.inspection import inspect_dataset
from event_lightning.data.preparation import DatasetMissingError, prepare
from event_lightning.data.registry import DATASETS, UnknownDatasetError

PROG = "python -m event_lightning.data"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description=f"Prepare or inspect a dataset. Known datasets: {', '.join(sorted(DATASETS))}.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for command, help_text in (
        ("prepare", "download (where tonic can) or check, preprocess and cache a dataset"),
        ("inspect", "print split sizes and per-sample statistics, optionally save a picture"),
    ):
        sub = commands.add_parser(command, help=help_text)
        sub.add_argument("dataset", help="dataset name")
        sub.add_argument("--root", required=True, help="the DataModule's root folder")
        sub.add_argument("--synthetic", action="store_true", help="write and use the offline stand-in")
        if command == "inspect":
            sub.add_argument("--picture", default=None, help="save a PNG of train sample 0 here")
            sub.add_argument("--max_samples", type=int, default=200, help="samples the statistics cover")
            sub.add_argument(
                "--max-samples", type=int, dest="max_samples", action=DeprecatedSpelling, help=argparse.SUPPRESS
            )
    return parser


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Run the CLI; returns the exit code (2 for an unknown dataset or missing files)."""
    args = build_parser(prog).parse_args(argv)
    try:
        if args.command == "prepare":
            prepare(args.dataset, args.root, args.synthetic)
        else:
            inspect_dataset(args.dataset, args.root, args.synthetic, args.picture, args.max_samples)
    except (UnknownDatasetError, DatasetMissingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
