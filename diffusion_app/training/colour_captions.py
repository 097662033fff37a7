"""Colour words for the emoji text-to-image model's captions.

Emoji names rarely say a colour: of the 3,495 training names, 14 name one of the six hues ("red heart",
"green apple"), each for a single image, too few for a small model trained on a CPU to learn what "red" or
"purple" means. So the training set of emoji-t2i also holds a second copy of every emoji whose name says no
colour, captioned with its own dominant colour in front ("yellow grinning face", "red guard"). Those copies are
mostly yellow faces and red or orange objects (111 green, 32 purple), so each emoji with a dominant colour also
gets recoloured copies: its hues turned until another colour dominates, captioned with that colour ("purple
grinning face", and "green heart" from "red heart"), the colour chosen that has the fewest captions so far, so
that every colour word is learnt from about as many images. A skin tone in the name already says the colour of
most of its pixels, and brown or pink lie between the six words, so those emoji get no copy. The held-out set
keeps the names alone.

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
HUE_CENTRES = {"red": 0, "orange": 27, "yellow": 55, "green": 120, "blue": 222, "purple": 277}  # degrees
NAMED_COLOUR = re.compile(r"\b(" + "|".join(HUE_NAMES) + r")\b")
NO_COPIES = re.compile(r"\b(skin tone|brown|pink)\b")
RECOLOURED_COPIES = 2  # per emoji with a dominant colour


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


def recolour(image: Image.Image, source: str, target: str) -> Image.Image:
    """The image with every hue turned by the angle from the source colour word's hue to the target's; saturation
    and brightness kept, so the white background, greys and outlines stay as they are."""
    hue, saturation, value = image.convert("RGB").convert("HSV").split()
    shift = round((HUE_CENTRES[target] - HUE_CENTRES[source]) * 256 / 360)
    return Image.merge("HSV", (hue.point(lambda h: (h + shift) % 256), saturation, value)).convert("RGB")


def add_colour_captions(folder: Path, out_dir: Path, recoloured_copies: int = RECOLOURED_COPIES) -> Path:
    """A copy of the imagefolder `folder` in `out_dir` with, beside each image, a colour-captioned copy of every
    image whose caption says no colour and which has a dominant colour, and `recoloured_copies` recoloured copies
    of every image whose dominant colour its caption does not contradict."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = [json.loads(line) for line in (Path(folder) / "metadata.jsonl").read_text().splitlines() if line]
    captions_per_colour = dict.fromkeys(HUE_NAMES, 0)
    lines = []
    for row in rows:
        shutil.copy(Path(folder) / row["file_name"], out_dir / row["file_name"])
        lines.append(json.dumps(row, ensure_ascii=False))
        if NO_COPIES.search(row["text"]):
            continue
        image = Image.open(out_dir / row["file_name"])
        colour = dominant_colour(image)
        named = NAMED_COLOUR.search(row["text"])
        if colour is None or (named and named.group(1) != colour):
            continue
        stem = Path(row["file_name"]).stem
        if not named:
            shutil.copy(out_dir / row["file_name"], out_dir / f"{stem}-{colour}.png")
            lines.append(json.dumps({**row, "file_name": f"{stem}-{colour}.png", "text": f"{colour} {row['text']}"},
                                    ensure_ascii=False))
            captions_per_colour[colour] += 1
        others = sorted((name for name in HUE_NAMES if name != colour), key=captions_per_colour.get)
        for target in others[:recoloured_copies]:
            recoloured = recolour(image, colour, target)
            if dominant_colour(recoloured) != target:
                continue
            recoloured.save(out_dir / f"{stem}-{target}.png")
            text = NAMED_COLOUR.sub(target, row["text"], count=1) if named else f"{target} {row['text']}"
            lines.append(json.dumps({**row, "file_name": f"{stem}-{target}.png", "text": text}, ensure_ascii=False))
            captions_per_colour[target] += 1
    (out_dir / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    for extra in Path(folder).glob("*.txt"):
        shutil.copy(extra, out_dir / extra.name)
    print(f"colour captions: {len(lines) - len(rows)} colour-captioned copies of {len(rows)} emoji in {out_dir}, "
          f"per colour {captions_per_colour}")
    return out_dir
