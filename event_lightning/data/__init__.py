"""Datasets and LightningDataModules, in three sub-packages by job.

* :mod:`event_lightning.data.datasets` -- one module per dataset, named after it: its Dataset(s)
  and LightningDataModule(s), and which configs use them;
* :mod:`event_lightning.data.standins` -- the offline stand-in of each dataset, written in the
  real on-disk format and read by the real reader;
* :mod:`event_lightning.data.loading` -- what the datasets share: framing, caches, collates,
  samplers, the bad-sample ledger, config checks, the image datasets' file formats.

``python -m event_lightning.data {prepare,inspect}`` drives the datasets of
:mod:`event_lightning.data.registry`.
"""
