"""Datasets and LightningDataModules, one module per dataset, named after it.

Each module's docstring names the ``config/*.yaml`` files that use it. The stand-ins they write
with ``synthetic: true`` are in :mod:`event_lightning.data.standins`; what they share is in
:mod:`event_lightning.data.loading`.
"""
