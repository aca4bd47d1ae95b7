"""The modules of events/ that became packages keep every public name they had at their old path."""

from __future__ import annotations

import importlib
import inspect

import pytest

# The public names of each module before it was split into a package of the same dotted path.
PUBLIC_NAMES = {
    "event_lightning.events.represent": (
        "FRAME_MODES FrameSlicing batch_frame_cells double_exponential_trace double_exponential_weights "
        "exponential_filter_taps frame_events pixel_index stacked_histogram time_surface to_frame "
        "to_frame_torch voxel_grid"
    ),
    "event_lightning.events.augment": (
        "CenterCrop Compose Denoise Downsample DropByArea DropByTime DropEvent EventTransform FlipLR "
        "FlipPolarity FlipUD RandomCrop Range RefractoryPeriod SensorTransform SpatialJitter TimeJitter Transformed "
        "center_crop crop denoise downsample drop_by_area drop_by_time drop_event flip_lr flip_polarity "
        "flip_ud random_crop refractory_period spatial_jitter time_jitter"
    ),
    "event_lightning.events.formats.aedat4": (
        "AEDAT4_COMPRESSIONS AEDAT4_EVENT_RECORD AEDAT4_MAGIC Aedat4Header Aedat4Packet Aedat4Stream "
        "encode_aedat4_header encode_aedat4_packet read_aedat4 read_aedat4_header read_aedat4_with_sensor "
        "write_aedat4"
    ),
}


@pytest.mark.parametrize("package", sorted(PUBLIC_NAMES))
def test_package_exports_the_old_public_names_from_its_submodules(package: str) -> None:
    module = importlib.import_module(package)
    names = PUBLIC_NAMES[package].split()
    assert sorted(module.__all__) == sorted(names)
    for name in names:
        value = getattr(module, name)
        if inspect.isfunction(value) or inspect.isclass(value):  # defined in a submodule now
            home = value.__module__
            assert home.startswith(f"{package}."), f"{package}.{name} comes from {home}"
            assert getattr(importlib.import_module(home), name) is value
