"""Write a model's spiking network as a NIR file.

``python -m event_lightning.export --ckpt_path X --output Y`` (also ``event-lightning export``).

The LightningModule class comes from the checkpoint (``_class_path`` saved by the CLI) or from the
run's ``config.yaml``; see docs/nir.md for what each model exports.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from event_lightning.nir.checkpoint import export_checkpoint
from event_lightning.nir.pose import EXPORTABLE_POSE_LAYERS, POSE_DEFAULT_OUTPUTS

PROG = "python -m event_lightning.export"


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt_path", required=True, help="Lightning checkpoint (.ckpt) of a spiking model")
    parser.add_argument("--output", required=True, help="the .nir file to write")
    parser.add_argument("--dt", type=float, default=None, help="seconds per step (default: the model's, else 1e-3)")
    parser.add_argument(
        "--input_shape",
        type=int,
        nargs=3,
        default=None,
        metavar=("C", "H", "W"),
        help="one input frame's shape (default: from the model's sensor_size)",
    )
    parser.add_argument(
        "--pose_outputs",
        nargs="+",
        default=list(POSE_DEFAULT_OUTPUTS),
        choices=EXPORTABLE_POSE_LAYERS,
        help="pose SNN layers whose spikes become graph outputs",
    )
    parser.add_argument("--model_class", default=None, help="LightningModule import path, if the checkpoint lacks it")
    return parser


def main(argv: Sequence[str] | None = None, prog: str = PROG) -> int:
    """Run the export; returns the exit code (1 when the checkpoint cannot be exported)."""
    args = build_parser(prog).parse_args(argv)
    try:
        graph = export_checkpoint(
            args.ckpt_path, args.output, args.dt, args.input_shape, args.pose_outputs, args.model_class
        )
    except (ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    kinds = sorted({type(node).__name__ for node in graph.nodes.values()})
    print(
        f"wrote {args.output}: {len(graph.nodes)} nodes ({', '.join(kinds)}), {len(graph.edges)} edges, "
        f"dt={graph.metadata['dt']} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
