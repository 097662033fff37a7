"""Colour words for the emoji text-to-image model's captions.

Emoji names rarely say a colour: of the 3,495 training names, 14 name one of the six hues ("red heart",
"green apple"), each for a single image, too few for a small model trained on a CPU to learn what "red" or
"purple" means. So the training set of emoji-t2i also holds a second copy of every emoji whose name says no
colour, captioned with its own dominant colour in front ("yellow grinning face", "red guard"), and the model
learns colour words from about 1,400 images. A skin tone in the name
already says the colour of most of its pixels, so those emoji get no copy. The held-out set keeps the names
alone.

The dominant colour is the hue bin that holds the most of an image's coloured pixels, white background and
dark outlines left out; benchmarks/bench_quality.py judges the colour prompts' samples by the same rule.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

WHITE_SATURATION, DARK_VALUE = 0.25, 0.25  # background and outline pixels are left out of the hue count
HUE_NAMES = {  # hue bins in degrees, as the colour words of emoji names use them
    "red": [(0, 15), (345, 360)], "orange": [(15, 40)], "yellow": [(40, 70)], "green": [(70, 170)],
    "blue": [(190, 255)], "purple": [(255, 300)],
}
NAMED_COLOUR = re.compile(r"\b(" + "|".join(HUE_NAMES) + r"|skin tone)\b")


def dominant_colour(image: Image.Image) -> str | None:
    """The colour word whose hue bin holds the most of an image's coloured pixels; None when it has none or when
    most coloured pixels fall between the bins (cyan, pink)."""
    hsv = np.asarray(image.convert("RGB").convert("HSV"), dtype=np.float32) / 255
    coloured = (hsv[..., 1] > WHITE_SATURATION) & (hsv[..., 2] > DARK_VALUE)
    hues = hsv[..., 0][coloured] * 360
    if hues.size == 0:
        return None
    counts = {name: sum(((low <= hues) & (hues < high)).sum() for low, high in bins) for name, bins in HUE_NAMES.items()}
    colour = max(counts, key=counts.get)
    return colour if counts[colour] > 0 else None


def add_colour_captions(folder: Path, out_dir: Path) -> Path:
    """A copy of the imagefolder `folder` in `out_dir` with, beside each image, a colour-captioned copy of every
    image whose caption says no colour and which has a dominant colour."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in (Path(folder) / "metadata.jsonl").read_text().splitlines() if line]
    lines = []
    for row in rows:
        shutil.copy(Path(folder) / row["file_name"], out_dir / row["file_name"])
        lines.append(json.dumps(row, ensure_ascii=False))
        colour = None if NAMED_COLOUR.search(row["text"]) else dominant_colour(Image.open(out_dir / row["file_name"]))
        if colour is None:
            continue
        copy = f"{Path(row['file_name']).stem}-{colour}.png"
        shutil.copy(out_dir / row["file_name"], out_dir / copy)
        lines.append(json.dumps({**row, "file_name": copy, "text": f"{colour} {row['text']}"}, ensure_ascii=False))
    (out_dir / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    for extra in Path(folder).glob("*.txt"):
        shutil.copy(extra, out_dir / extra.name)
    print(f"colour captions: {len(lines) - len(rows)} of {len(rows)} emoji got a colour-captioned copy in {out_dir}")
    return out_dir
