"""Ships ``config/*.yaml`` inside the package, as ``event_lightning/configs/``, without moving them.

``config/`` stays the one copy (edited in place, named in the docs as ``config/X.yaml``); a wheel
maps it to the data package ``event_lightning.configs`` so that ``event-lightning fit --config
quickstart`` finds it from any working directory (:func:`event_lightning.config_files.find_config`,
which reads ``config/`` itself in a checkout or an editable install). Everything else is in
pyproject.toml; setuptools reads both.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["event_lightning*"]), "event_lightning.configs"],
    package_dir={"event_lightning.configs": "config"},
    package_data={"event_lightning.configs": ["*.yaml"]},
)
