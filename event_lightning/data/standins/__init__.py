"""Offline stand-ins, one module per dataset they stand in for, named after it.

Each writes small files in the real dataset's on-disk format and layout, deterministically for a
configuration, so the real reader and DataModule run on them: tests, the quickstart and the
``*_synthetic.yaml`` configs use them and nothing downloads. A stand-in never imports a DataModule;
the DataModules of :mod:`event_lightning.data.datasets` call the stand-ins, each through its
``*_folder`` / ``ensure_*`` pair: one folder per generation parameters, written once under a lock
and renamed into place, never deleted (:mod:`event_lightning.data.standins.folders`).
"""
