"""Visualisation: event grids and GIFs, frame and voxel panels, spike rasters, pose overlays, confusion matrices."""

from event_lightning.viz.confusion import plot_confusion_matrix
from event_lightning.viz.events import (
    EventColours,
    animate_events,
    events_to_rgb,
    plot_event_grid,
    plot_event_voxels,
    plot_frame_rows,
    plot_frames,
    plot_image_rows,
    plot_voxel_grid,
)
from event_lightning.viz.pose import DHP19_EDGES, plot_pose_overlay
from event_lightning.viz.spikes import figure_to_image, plot_spike_raster

__all__ = [
    "DHP19_EDGES",
    "EventColours",
    "animate_events",
    "events_to_rgb",
    "figure_to_image",
    "plot_confusion_matrix",
    "plot_event_grid",
    "plot_event_voxels",
    "plot_frame_rows",
    "plot_frames",
    "plot_image_rows",
    "plot_pose_overlay",
    "plot_spike_raster",
    "plot_voxel_grid",
]
