"""One uploaded file decoded safely into a training image: a format and size check before decoding (no
decompression bombs), a full decode (which finds truncated files), EXIF orientation, and a conversion to
8-bit RGB or grayscale that says what it changed."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps

IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
MAX_IMAGE_PIXELS = 40_000_000  # more is refused as a decompression bomb
MIN_SIDE = 8  # the smallest training resolution
STORED_MAX_SIDE = 1024  # the largest training resolution: stored images are scaled down to it
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


class UnusableImage(ValueError):
    pass


def decode_image(data: bytes) -> tuple[Image.Image, tuple[int, int, str], str | None]:
    """Decode fully (which finds truncated files), orient by EXIF, convert to 'RGB' or 'L'.

    Returns the image, the uploaded (width, height, mode) and a note on the conversion.
    """
    try:
        with Image.open(io.BytesIO(data)) as opened:
            if opened.format not in IMAGE_FORMATS:
                raise UnusableImage(f"{opened.format} images are not accepted (use {', '.join(IMAGE_FORMATS)})")
            width, height = opened.size
            if width * height > MAX_IMAGE_PIXELS:
                raise UnusableImage(too_many_pixels(width, height))
            opened.load()
            mode = opened.mode
            image, note = training_mode(ImageOps.exif_transpose(opened))
    except UnusableImage:
        raise
    except Image.DecompressionBombError:
        raise UnusableImage("too many pixels to decode safely (a decompression bomb?)") from None
    except Exception as err:  # Pillow reports broken files with many exception types
        raise UnusableImage(f"corrupt, truncated or unreadable image ({type(err).__name__}: {err})") from None
    if min(width, height) < MIN_SIDE:
        raise UnusableImage(f"too small: {width}x{height}; the smallest training resolution is {MIN_SIDE}")
    return image, (width, height, mode), note


def too_many_pixels(width: int, height: int) -> str:
    return (f"{width}x{height} is {width * height:,} pixels, more than {MAX_IMAGE_PIXELS:,} "
            "(refused as a possible decompression bomb)")


def training_mode(image: Image.Image) -> tuple[Image.Image, str | None]:
    """8-bit 'RGB' or 'L', with a note saying what changed."""
    mode = image.mode
    if mode in ("RGB", "L"):
        return image.copy(), None
    if mode == "1":
        return image.convert("L"), "1-bit: converted to grayscale"
    if mode in SIXTEEN_BIT_MODES:
        pixels = np.asarray(image, dtype=np.float64) / 257  # 0..65535 -> 0..255
        return Image.fromarray(np.clip(pixels, 0, 255).round().astype(np.uint8), "L"), \
            f"{mode}: 16-bit grayscale scaled to 8 bits"
    if mode == "P" and "transparency" not in image.info:
        return image.convert("RGB"), "P: palette converted to RGB"
    if mode in ALPHA_MODES or mode == "P":
        target = "L" if mode in ("LA", "La") else "RGB"
        flat = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image.convert("RGBA"))
        return flat.convert(target), f"{mode}: transparency flattened onto white"
    if mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        return image.convert("RGB"), f"{mode}: converted to RGB"
    raise UnusableImage(f"pixel mode {mode} is not supported")


def scale_down(image: Image.Image, max_side: int) -> Image.Image:
    """Shrink so that the shorter side is at most max_side; training never needs more."""
    scale = max_side / min(image.size)
    if scale >= 1:
        return image
    size = (max(max_side, round(image.width * scale)), max(max_side, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)
