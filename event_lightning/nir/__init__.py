"""NIR (Neuromorphic Intermediate Representation) export and import of the spiking networks.

Export: :func:`export_lif_classifier`, :func:`export_decolle_encoder`, :func:`export_pose_snn`
(networks -> ``nir.NIRGraph`` with ``metadata["dt"]``); a Lightning checkpoint -> ``.nir`` file is
:func:`event_lightning.nir.checkpoint.export_checkpoint` (not imported here, so that this package
needs no Lightning). Import: :class:`NIRExecutor` / :func:`load_nir` (a graph -> a
time-stepped torch module). Conventions: docs/nir.md.
"""

from event_lightning.nir.decolle import decolle_graph_input, export_decolle_encoder
from event_lightning.nir.executor import NIRExecutor, graph_dt, load_nir
from event_lightning.nir.lif import export_lif_classifier
from event_lightning.nir.pose import EXPORTABLE_POSE_LAYERS, POSE_DEFAULT_OUTPUTS, export_pose_snn

__all__ = [
    "EXPORTABLE_POSE_LAYERS",
    "POSE_DEFAULT_OUTPUTS",
    "NIRExecutor",
    "decolle_graph_input",
    "export_decolle_encoder",
    "export_lif_classifier",
    "export_pose_snn",
    "graph_dt",
    "load_nir",
]
