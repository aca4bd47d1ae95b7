"""Visualisation: figures are made, not blank, show ON and OFF colours; the GIF has the right frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image, ImageSequence

from event_lightning.events import make_events
from event_lightning.events.core import SensorSize
from event_lightning.events.formats.dhp19_h5 import DHP19_JOINTS
from event_lightning.events.represent.frames import to_frame
from event_lightning.events.represent.voxel import voxel_grid
from event_lightning.viz import (
    DHP19_EDGES,
    EventColours,
    animate_events,
    events_to_rgb,
    figure_to_image,
    plot_event_grid,
    plot_event_voxels,
    plot_frames,
    plot_pose_overlay,
    plot_spike_raster,
    plot_voxel_grid,
)

SENSOR = SensorSize(width=32, height=24, polarities=2)


def moving_bar(n_steps: int = 20, step_us: int = 5_000) -> np.ndarray:
    """A bright bar moving right one pixel per step: ON at its leading edge, OFF three pixels behind."""
    k, row = np.meshgrid(np.arange(n_steps), np.arange(4, 20), indexing="ij")
    k, row = k.ravel(), row.ravel()
    x = np.concatenate([4 + k, 1 + k])
    y = np.concatenate([row, row])
    t = np.concatenate([k * step_us, k * step_us + 1])
    p = np.concatenate([np.ones_like(k), np.zeros_like(k)])
    order = np.argsort(t, kind="stable")
    return make_events(x[order], y[order], t[order], p[order])


def colour_fraction(image: np.ndarray, rgb: np.ndarray, tol: float = 30.0) -> float:
    return float((np.abs(image.astype(float) - rgb).max(axis=-1) < tol).mean())


def reddish(image: np.ndarray) -> float:
    """Fraction of pixels clearly red (ON colour, any opacity over white or black)."""
    return float((image[..., 0].astype(int) - image[..., 2] > 60).mean())


def bluish(image: np.ndarray) -> float:
    return float((image[..., 2].astype(int) - image[..., 0] > 60).mean())


def assert_not_blank(image: np.ndarray) -> None:
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[-1] == 3
    assert image.shape[0] > 50 and image.shape[1] > 50
    assert image.std() > 10.0


def test_events_to_rgb_colours_and_scale() -> None:
    frame = np.zeros((2, 3, 4), dtype=np.int16)
    frame[1, 0, 0] = 4  # ON only, busiest pixel
    frame[0, 1, 1] = 4  # OFF only
    frame[:, 2, 2] = 1  # one of each: half-mixed hue at quarter opacity
    rgb = events_to_rgb(frame)
    colours = EventColours()
    np.testing.assert_allclose(rgb[0, 0], colours.on)
    np.testing.assert_allclose(rgb[1, 1], colours.off)
    np.testing.assert_allclose(rgb[0, 1], colours.background)
    mixed = 0.5 * (np.array(colours.on) + np.array(colours.off))
    np.testing.assert_allclose(rgb[2, 2], 0.5 * np.array(colours.background) + 0.5 * mixed)
    np.testing.assert_allclose(events_to_rgb(np.zeros((2, 3, 4))), np.ones((3, 4, 3)))
    with pytest.raises(ValueError, match=r"\(P, H, W\)"):
        events_to_rgb(np.zeros((3, 4)))


def test_event_grid_shows_on_and_off() -> None:
    events = moving_bar()
    fig = plot_event_grid(events, SENSOR, n_panels=4)
    assert len(fig.axes) == 4
    assert fig.axes[0].get_title() == "0.0-23.8 ms"  # (95_001 µs - 0) // 4 = 23_750 µs windows
    image = figure_to_image(fig)
    assert_not_blank(image)
    assert reddish(image) > 0.002 and bluish(image) > 0.002
    # Only ON events: no OFF-coloured pixels at all.
    on_only = events[events["p"] == 1]
    on_image = figure_to_image(plot_event_grid(on_only, SENSOR, n_panels=4))
    assert reddish(on_image) > 0.002 and bluish(on_image) == 0.0


def test_plot_frames_accepts_torch_and_checks_shape() -> None:
    frames = torch.from_numpy(to_frame(moving_bar(), SENSOR, n_time_bins=3))
    fig = plot_frames(frames, titles=["a", "b", "c"])
    assert [ax.get_title() for ax in fig.axes] == ["a", "b", "c"]
    assert_not_blank(figure_to_image(fig))
    with pytest.raises(ValueError, match=r"\[T, P, H, W\]"):
        plot_frames(frames[0])


def test_voxel_grid_plot_is_diverging() -> None:
    events = moving_bar()
    voxels = voxel_grid(events, SENSOR, 4)
    fig = plot_voxel_grid(voxels)
    image = figure_to_image(fig)
    assert_not_blank(image)
    mapped = fig.axes[0].get_images()[0].to_rgba(np.array([voxels.max(), 0.0, voxels.min()]), bytes=True)[:, :3]
    assert reddish(mapped[None, :1]) == 1.0 and bluish(mapped[None, 2:]) == 1.0  # ON red, OFF blue
    assert mapped[1].min() > 230  # zero is the diverging map's white centre
    limits = fig.axes[0].get_images()[0].get_clim()
    assert limits == (-np.abs(voxels).max(), np.abs(voxels).max())
    np.testing.assert_array_equal(
        plot_event_voxels(events, SENSOR, 4).axes[0].get_images()[0].get_array(), voxels[0, 0]
    )


def test_animate_events_gif(tmp_path) -> None:
    events = moving_bar()  # t from 0 to 95_001 µs
    path = animate_events(events, SENSOR, tmp_path / "anim" / "bar.gif", frame_ms=20.0, fps=5)
    assert path.exists()
    # 20 ms windows with the incomplete last one: ceil((95_001 - 20_000) / 20_000) + 1 = 5.
    assert len(to_frame(events, SENSOR, time_window=20_000.0, include_incomplete=True)) == 5
    with Image.open(path) as gif:
        assert gif.format == "GIF"
        assert gif.n_frames == 5
        frames = [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(gif)]
    for frame in frames:
        assert frame.std() > 10.0
    for a, b in zip(frames, frames[1:], strict=False):
        assert np.abs(a.astype(int) - b).sum() > 0
    assert reddish(frames[0]) > 0.001 and bluish(frames[0]) > 0.001
    with pytest.raises(ValueError, match="frame_ms"):
        animate_events(events, SENSOR, tmp_path / "x.gif", frame_ms=0)


@pytest.mark.parametrize("shape", [(30, 10), (30, 3, 10)])
def test_spike_raster(shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    spikes = torch.from_numpy((rng.random(shape) < 0.2).astype(np.float32))
    fig = plot_spike_raster(spikes, sample=1 if len(shape) == 3 else 0, dt_ms=1.0, title="raster")
    raster, rate = fig.axes
    drawn = raster.collections[0].get_offsets()
    expected = spikes[:, 1] if len(shape) == 3 else spikes
    assert len(drawn) == int(expected.sum())
    (counts,) = rate.patches
    np.testing.assert_array_equal(counts.get_data().values, expected.sum(dim=1).numpy())
    assert_not_blank(figure_to_image(fig))
    with pytest.raises(ValueError, match=r"\[T, N\]"):
        plot_spike_raster(np.zeros(5))


def test_figure_to_image_size() -> None:
    fig = plot_spike_raster(np.eye(8), figsize=(4.0, 2.0))
    image = figure_to_image(fig, dpi=50)
    assert image.shape == (100, 200, 3) and image.dtype == np.uint8


def test_dhp19_edges_connect_named_joints() -> None:
    assert len(DHP19_JOINTS) == 13
    named = {(DHP19_JOINTS[a], DHP19_JOINTS[b]) for a, b in DHP19_EDGES}
    assert {("elbowR", "handR"), ("hipL", "kneeL"), ("kneeR", "footR"), ("head", "shoulderL")} <= named
    degree = np.bincount(np.ravel(DHP19_EDGES), minlength=13)
    assert degree.min() >= 1 and len(set(DHP19_EDGES)) == 14  # connected every joint, no duplicates


def test_pose_overlay_draws_skeleton() -> None:
    joints = np.array(
        [[32, 8], [26, 16], [38, 16], [22, 26], [42, 26], [28, 36], [36, 36],
         [20, 34], [44, 34], [27, 46], [37, 46], [26, 56], [38, 56]],
        dtype=float,
    )  # fmt: skip
    grey = np.zeros((64, 64))
    fig = plot_pose_overlay(grey, joints, title="pose")
    segments = fig.axes[0].collections[0].get_segments()
    assert len(segments) == len(DHP19_EDGES)
    np.testing.assert_array_equal(segments[4], joints[[3, 7]])
    image = figure_to_image(fig)
    assert_not_blank(image)
    green = np.array([0, 224, 0])
    assert colour_fraction(image, green, tol=40) > 0.005
    # A reference pose and an event-frame background, with a missing joint.
    joints[12] = np.nan
    frame = to_frame(moving_bar(), (64, 64, 2), n_time_bins=1)[0]
    fig = plot_pose_overlay(frame, joints, reference=joints + 2, label_joints=True)
    image = figure_to_image(fig)
    assert colour_fraction(image, np.array([255, 0, 255]), tol=40) > 0.002
    assert reddish(image) > 0.001
    with pytest.raises(ValueError, match=r"\[13, 2\]"):
        plot_pose_overlay(grey, joints[:5])


def test_canvas_writes_its_labels_only_when_rendered():
    from event_lightning.viz.canvas import Canvas, text_size

    canvas = Canvas.blank(40, 120)
    canvas.text(60, 20, "epoch 3", anchor="mm", size=12)
    canvas.text(2, 2, "a\nb", colour=(255, 0, 0))
    assert canvas.texts == ["epoch 3", "a\nb"]
    assert (canvas.pixels == 255).all()  # the labels are data until rendered
    image = canvas.render()
    assert image.shape == (40, 120, 3) and image.dtype == np.uint8
    dark = np.argwhere(image.min(axis=2) < 128)
    width, height = text_size("epoch 3", 12)
    assert 0 < width < 120 and 0 < height < 40
    # the centred label's ink lies within its measured box around (60, 20)
    centre_ink = dark[(dark[:, 0] > 10) & (dark[:, 1] > 20)]
    assert abs(centre_ink[:, 1].mean() - 60) < 6 and abs(centre_ink[:, 0].mean() - 20) < 6
    assert centre_ink[:, 1].max() - centre_ink[:, 1].min() <= width
    red = (image[..., 0] > 150) & (image[..., 1] < 100)
    assert red[:20, :15].any() and not red[:, 20:].any()  # the red label stays at the top left
    with pytest.raises(ValueError, match=r"expected uint8 pixels \[H, W, 3\], found float64 \(4, 4\)"):
        Canvas(np.zeros((4, 4)))


def test_frame_rows_canvas_enlarges_small_sensors_and_shrinks_large_ones():
    from event_lightning.viz.canvas import text_size
    from event_lightning.viz.canvas_figures import frame_rows_canvas

    small = np.zeros((2, 2, 10, 12))
    small[0, 1, 3, 4] = 5  # one ON pixel in the first panel
    canvas = frame_rows_canvas([small], row_labels=["#0"], panel_labels=[["a", "b"]], title="t")
    assert canvas.texts == ["#0", "a", "b", "t"]
    red = (canvas.pixels[..., 0] > 150) & (canvas.pixels[..., 2] < 100)
    ys, xs = np.nonzero(red)
    # 12 px wide panels become 96 px (x8): the ON pixel is one 8 x 8 block
    assert red.sum() == 64 and np.ptp(ys) == 7 and np.ptp(xs) == 7
    # labels wider than their panels widen the columns: no label reaches the next one's start
    wide = frame_rows_canvas([small], row_labels=["#0"], panel_labels=[["events 100000-199999", "x"]])
    first, second = wide.labels[1], wide.labels[2]
    assert first.x + text_size("events 100000-199999", first.size)[0] < second.x
    large = np.ones((1, 2, 260, 346))
    shrunk = frame_rows_canvas([large], row_labels=["#0"])
    coloured = shrunk.pixels.min(axis=2) < 250
    # a 346 px wide sensor is over twice 160 px: its counts are summed over 2 x 2 blocks
    assert coloured.any(axis=0).sum() == 346 // 2 and coloured.any(axis=1).sum() == 260 // 2
    with pytest.raises(ValueError, match=r"expected rows \[N, P, H, W\] of one \(P, H, W\)"):
        frame_rows_canvas([np.zeros((1, 3, 4, 4))], row_labels=["#0"])
