"""Lay equally sized images out in a grid, row by row."""

from __future__ import annotations

import math

from PIL import Image


def image_grid(images: list[Image.Image], columns: int, padding: int = 2, background: str = "white") -> Image.Image:
    if not images:
        raise ValueError("A grid needs at least one image.")
    width, height = images[0].size
    rows = math.ceil(len(images) / columns)
    grid = Image.new(images[0].mode, (columns * (width + padding) - padding, rows * (height + padding) - padding),
                     background)
    for index, image in enumerate(images):
        row, column = divmod(index, columns)
        grid.paste(image, (column * (width + padding), row * (height + padding)))
    return grid
