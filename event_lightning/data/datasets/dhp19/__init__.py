"""DHP19 (Calabrese et al. 2019) for the hybrid ANN-SNN pose models: 13 joints seen by four DAVIS346.

Used by ``config/pose_{cnn,snn,rnn,hybrid_cnn_snn,hybrid_cnn_rnn}_dhp19.yaml``
(:class:`DHP19DataModule`, the real recordings) and ``config/pose_*_synthetic.yaml``
(:class:`SyntheticDHP19DataModule`, the stand-in of :mod:`event_lightning.data.standins.dhp19`).

One job per module:

* :mod:`.recordings` -- the ``S<subject>_*_events.h5`` / ``_label.h5`` files of a folder;
* :mod:`.crop` -- the 256x256 crop of the sensor the networks see (:class:`DHP19Crop`);
* :mod:`.sampling` -- how windows are cut (:class:`DHP19Sampling`);
* :mod:`.windows` -- the windows of a split as samples, and their timing rules (:class:`DHP19Windows`);
* :mod:`.batches` -- what a batch holds: counts collated sparse, made dense on the device;
* :mod:`.datamodule` -- the two DataModules.
"""

from event_lightning.data.datasets.dhp19.batches import collate_dhp19, densify_counts
from event_lightning.data.datasets.dhp19.crop import DHP19Crop
from event_lightning.data.datasets.dhp19.datamodule import DHP19DataModule, SyntheticDHP19DataModule
from event_lightning.data.datasets.dhp19.recordings import DHP19Recording, find_recordings, subject_of
from event_lightning.data.datasets.dhp19.sampling import DHP19Sampling
from event_lightning.data.datasets.dhp19.windows import DHP19Windows

__all__ = [
    "DHP19Crop",
    "DHP19DataModule",
    "DHP19Recording",
    "DHP19Sampling",
    "DHP19Windows",
    "SyntheticDHP19DataModule",
    "collate_dhp19",
    "densify_counts",
    "find_recordings",
    "subject_of",
]
