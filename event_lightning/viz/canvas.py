"""An RGB image and the text to write on it: figures logged during training, drawn without matplotlib.

A matplotlib figure costs 50-150 ms to lay out and render on a CPU, most of it in text and tick
artists; a stand-in's or a small dataset's epoch lasts less than a second, so the figures a
callback logs every few epochs would cost a large share of the run. A :class:`Canvas` is the
figure's pixels (numpy, built by slicing and colour lookup) plus a list of text labels that
Pillow writes in one pass when the canvas is rendered: a few milliseconds per figure. The labels
stay readable as data (:attr:`Canvas.texts`), so what a figure says can be tested without reading
pixels back.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["BLACK", "WHITE", "Canvas", "Label", "text_size"]

BLACK = (0, 0, 0)
WHITE = (255, 255, 255)
LINE_SPACING = 2  # pixels between the lines of a multi-line label


@functools.lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's bundled font: no font file or font cache to look up on the user's machine.
    return ImageFont.load_default(size)


def text_size(text: str, size: int) -> tuple[int, int]:
    """Width and height in pixels of ``text`` (lines split at ``\\n``) at font ``size`` (pixels)."""
    left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).multiline_textbbox(
        (0, 0), text, font=_font(size), spacing=LINE_SPACING
    )
    return int(np.ceil(right - min(left, 0))), int(np.ceil(bottom - min(top, 0)))


@dataclass(frozen=True)
class Label:
    """One text on a canvas: position in pixels (x right, y down), Pillow anchor, font size, RGB colour.

    ``anchor`` is Pillow's two-letter anchor (``"la"``: the text's left-top at ``(x, y)``, ``"mm"``:
    its middle, ``"rm"``: right-middle); multi-line texts take ``l``, ``m`` or ``r`` with ``a``, ``m``
    or ``d`` vertically.
    """

    x: float
    y: float
    text: str
    anchor: str = "la"
    size: int = 11
    colour: tuple[int, int, int] = BLACK


@dataclass
class Canvas:
    """Pixels ``[H, W, 3]`` uint8 and the labels to write on them (:meth:`render`)."""

    pixels: np.ndarray
    labels: list[Label] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.pixels.ndim != 3 or self.pixels.shape[2] != 3 or self.pixels.dtype != np.uint8:
            raise ValueError(f"Canvas: expected uint8 pixels [H, W, 3], found {self.pixels.dtype} {self.pixels.shape}")

    @classmethod
    def blank(cls, height: int, width: int) -> Canvas:
        """A white canvas of ``height x width`` pixels."""
        return cls(np.full((height, width, 3), 255, dtype=np.uint8))

    def text(self, x: float, y: float, text: str, **style: object) -> None:
        """Add a label (see :class:`Label` for ``anchor``, ``size``, ``colour``)."""
        self.labels.append(Label(x, y, text, **style))

    @property
    def texts(self) -> list[str]:
        """The labels' texts, in the order they were added."""
        return [label.text for label in self.labels]

    def render(self) -> np.ndarray:
        """The pixels with every label written: uint8 ``[H, W, 3]`` (``add_image(..., dataformats="HWC")``)."""
        image = Image.fromarray(self.pixels)
        draw = ImageDraw.Draw(image)
        for label in self.labels:
            draw.multiline_text(
                (label.x, label.y),
                label.text,
                fill=label.colour,
                font=_font(label.size),
                anchor=label.anchor,
                spacing=LINE_SPACING,
                align={"l": "left", "m": "center", "r": "right"}[label.anchor[0]],
            )
        return np.asarray(image)
