"""Image grids for the report: synthetic samples per class, and synthetic images beside their nearest real ones."""
from __future__ import annotations

import base64
import io
import math
from typing import Any

import numpy as np
from PIL import Image

_PAIRS, _PAIRS_PER_ROW = 8, 4
_SAMPLES_PER_CLASS, _MAX_SAMPLE_ROWS = 8, 10
_TILE = 64  # grid tiles are scaled up to at least this many pixels


def grid_png(rows: list[list[np.ndarray]], group: int = 1) -> str:
    """Tiles (C, H, W in [-1, 1]) in rows as a base64 PNG: 2 px apart, 12 px after every ``group`` tiles and between rows."""
    side = rows[0][0].shape[-1]
    scale = max(1, math.ceil(_TILE / side))
    tile, gap, group_gap = side * scale, 2, 12
    columns = max(len(row) for row in rows)

    def left(j: int) -> int:
        return j * (tile + gap) + (j // group) * (group_gap - gap)

    channels = rows[0][0].shape[0]
    mode = "L" if channels == 1 else "RGB"
    canvas = Image.new(mode, (left(columns - 1) + tile, len(rows) * (tile + group_gap) - group_gap), color=255 if mode == "L" else (255, 255, 255))
    for i, row in enumerate(rows):
        for j, image in enumerate(row):
            pixels = np.clip(np.round((image + 1) * 127.5), 0, 255).astype(np.uint8)
            pixels = pixels.repeat(scale, axis=1).repeat(scale, axis=2)
            canvas.paste(Image.fromarray(pixels[0] if channels == 1 else pixels.transpose(1, 2, 0), mode), (left(j), i * (tile + group_gap)))
    buffer = io.BytesIO()
    canvas.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def samples_grid(syn: np.ndarray, labels: np.ndarray | None, classes: list[str]) -> dict[str, Any]:
    """Up to 8 synthetic images per requested class (the first ones), a row per class."""
    if labels is None:
        rows = [list(syn[i : i + _SAMPLES_PER_CLASS]) for i in (0, _SAMPLES_PER_CLASS) if i < len(syn)]
        caption = "The first synthetic images."
    else:
        shown = [label for label in classes if (labels == label).any()][:_MAX_SAMPLE_ROWS]
        rows = [list(syn[labels == label][:_SAMPLES_PER_CLASS]) for label in shown]
        caption = f"Up to {_SAMPLES_PER_CLASS} synthetic images per requested class; rows, top to bottom: {', '.join(shown)}."
    return {"kind": "image_grid", "title": "Synthetic samples", "png_base64": grid_png(rows), "caption": caption, "real_images": False}


def pairs_grid(syn: np.ndarray, train: np.ndarray, distance: np.ndarray, nearest: np.ndarray, show_real: bool) -> dict[str, Any]:
    """The synthetic images closest to a training image, each beside it (or alone when real images are hidden)."""
    closest = np.argsort(distance, kind="stable")[:_PAIRS]
    distances = ", ".join(f"{distance[i]:.3g}" for i in closest)
    if show_real:
        tiles = [tile for i in closest for tile in (syn[i], train[nearest[i]])]
        rows = [tiles[start : start + 2 * _PAIRS_PER_ROW] for start in range(0, len(tiles), 2 * _PAIRS_PER_ROW)]
        png = grid_png(rows, group=2)
        caption = (
            f"The {len(closest)} synthetic images closest to a training image, each left of its nearest REAL TRAINING IMAGE "
            f"(root-mean-square pixel differences, in reading order: {distances}). This grid shows real patient images: share "
            "this report only with people allowed to see the training data, or re-run with show_real_images=False."
        )
    else:
        png = grid_png([list(syn[closest])])
        caption = (
            f"The {len(closest)} synthetic images closest to a training image (root-mean-square pixel differences: {distances}); "
            "their nearest training images are not shown (show_real_images=False)."
        )
    return {"kind": "image_grid", "title": "Closest synthetic–training pairs", "png_base64": png, "caption": caption, "real_images": show_real}
