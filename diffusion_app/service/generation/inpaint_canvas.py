"""The canvas of an inpainting run: the mask checked (white redraws, black keeps), outpainting's wider canvas, and
the overlay that puts the input back outside the mask.

A mask comes painted in the editor or uploaded. It is made binary at half grey, and must match the image's size:
a mask of another picture is a mistake worth a message, not a resize. Outpainting widens the canvas by a number
of pixels on each side, fills the new border with the nearest edge pixels (a start the model can blend from), and
marks it white in the mask.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

MAX_CANVAS_SIDE = 1024  # pixels; Stable Diffusion's cost grows with the square of the side
MAX_EXTENSION = 512  # pixels added on one side by outpainting
MAX_MASK_BLUR = 64


@dataclass(frozen=True)
class Outpaint:
    """Pixels added on each side of the canvas."""

    left: int = 0
    right: int = 0
    up: int = 0
    down: int = 0

    def validated(self) -> "Outpaint":
        for side, pixels in (("left", self.left), ("right", self.right), ("up", self.up), ("down", self.down)):
            if isinstance(pixels, bool) or not isinstance(pixels, (int, float)) or int(pixels) != pixels \
                    or not 0 <= pixels <= MAX_EXTENSION:
                raise ValueError(f"Outpainting {side} must be a whole number of pixels from 0 to {MAX_EXTENSION}, "
                                 f"got {pixels!r}.")
        return Outpaint(int(self.left), int(self.right), int(self.up), int(self.down))

    @property
    def any(self) -> bool:
        return any((self.left, self.right, self.up, self.down))


def checked_picture(image) -> Image.Image:
    if image is None:
        raise ValueError("Upload or paste an image to inpaint.")
    if not isinstance(image, Image.Image):
        raise ValueError(f"The image to inpaint must be a picture, got {type(image).__name__}.")
    return image


def binary_mask(mask: Image.Image | None, size: tuple[int, int]) -> Image.Image:
    """The mask as 0/255 grey ('L'), checked: of the image's size, and not empty."""
    if mask is None:
        mask = Image.new("L", size)
    if not isinstance(mask, Image.Image):
        raise ValueError(f"The mask must be a picture, got {type(mask).__name__}.")
    if mask.size != size:
        raise ValueError(f"The mask is {mask.width}x{mask.height} but the image is {size[0]}x{size[1]}: paint the "
                         "mask on this image, or upload one of its size.")
    return mask.convert("L").point(lambda value: 255 if value >= 128 else 0)


def outpainted(image: Image.Image, mask: Image.Image, outpaint: Outpaint) -> tuple[Image.Image, Image.Image]:
    """The image on a canvas widened by `outpaint` (the border filled from the nearest edge), and its mask with the
    border white."""
    outpaint = outpaint.validated()
    if not outpaint.any:
        return image, mask
    width, height = image.width + outpaint.left + outpaint.right, image.height + outpaint.up + outpaint.down
    if max(width, height) > MAX_CANVAS_SIDE:
        raise ValueError(f"The widened canvas would be {width}x{height}; its sides may be at most {MAX_CANVAS_SIDE} "
                         "pixels.")
    pixels = np.asarray(image.convert("RGB"))
    pad = ((outpaint.up, outpaint.down), (outpaint.left, outpaint.right))
    canvas = Image.fromarray(np.pad(pixels, (*pad, (0, 0)), mode="edge"))
    border = np.pad(np.asarray(mask), pad, constant_values=255)
    return canvas, Image.fromarray(border.astype(np.uint8), "L")


def checked_canvas(image, mask, outpaint: Outpaint = Outpaint()) -> tuple[Image.Image, Image.Image]:
    """(image in RGB, binary mask) of a request, widened for outpainting, with a message for what cannot be
    inpainted: no image, a mask of another size, nothing painted, a canvas too large."""
    image = checked_picture(image)
    if max(image.size) > MAX_CANVAS_SIDE:
        raise ValueError(f"The image is {image.width}x{image.height}; inpainting takes sides of at most "
                         f"{MAX_CANVAS_SIDE} pixels. Make it smaller first.")
    image, mask = outpainted(image.convert("RGB"), binary_mask(mask, image.size), outpaint)
    if not np.asarray(mask).any():
        raise ValueError("The mask is empty: paint over the part to redraw (white), or widen the canvas with "
                         "outpainting.")
    return image, mask


def is_all_redrawn(mask: Image.Image) -> bool:
    """True when nothing is kept: inpainting is then sampling from scratch."""
    return bool(np.asarray(mask).all())


def blurred(mask: Image.Image, radius: float) -> Image.Image:
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not 0 <= radius <= MAX_MASK_BLUR:
        raise ValueError(f"Mask blur must be a number of pixels from 0 to {MAX_MASK_BLUR}, got {radius!r}.")
    return mask.filter(ImageFilter.GaussianBlur(radius)) if radius else mask


def overlay(inpainted: Image.Image, original: Image.Image, mask: Image.Image) -> Image.Image:
    """The inpainted image where the mask is white, the original where it is black, blended in between (all three
    of one size: the run's)."""
    return Image.composite(inpainted.convert("RGB"), original.convert("RGB"), mask)
