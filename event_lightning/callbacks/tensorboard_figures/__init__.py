"""Generic TensorBoard figures usable from any config: the validation input, and spike rasters.

Two callbacks, each also usable as a plain function from Python:

* :class:`InputFigureLogger` / :func:`input_figure`: the first validation batch's input drawn as
  ON/OFF event panels (``event_lightning.viz.plot_frames``), one row per sample;
* :class:`SpikeRasterLogger` / :func:`spike_raster_figures`: a forward hook on a submodule named
  by its dotted path (``net.lif``) captures its spikes on the first validation batch and draws
  rasters (``event_lightning.viz.plot_spike_raster``).

Both log every ``every_n_epochs`` validation epochs (the sanity check excluded) at the trainer's
global step, on global rank 0 only, and do nothing (after one warning) when the trainer has no
TensorBoard logger. In a config::

    trainer:
      callbacks:
        - class_path: event_lightning.callbacks.tensorboard_figures.InputFigureLogger
          init_args: {every_n_epochs: 1}
        - class_path: event_lightning.callbacks.tensorboard_figures.SpikeRasterLogger
          init_args: {module: net.lif}

``periodic``: the shared logging rules; ``inputs``: the input panels; ``rasters``: the spike rasters.
"""

from event_lightning.callbacks.tensorboard_figures.inputs import (
    DICT_KEY_LAYOUTS,
    LAYOUTS,
    InputFigureLogger,
    input_figure,
)
from event_lightning.callbacks.tensorboard_figures.rasters import (
    RasterSelection,
    SpikeRasterLogger,
    select_output,
    spike_raster_figures,
)

__all__ = [
    "DICT_KEY_LAYOUTS",
    "LAYOUTS",
    "InputFigureLogger",
    "RasterSelection",
    "SpikeRasterLogger",
    "input_figure",
    "select_output",
    "spike_raster_figures",
]
