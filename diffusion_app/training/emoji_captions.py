"""The captioned emoji dataset of the bundled text models: OpenMoji's emoji at 64 px, each captioned with its
name, split into a training set and a fixed held-out tenth for evaluation.

Names are the `emoji` package's CLDR short names ("grinning face", "red heart", "flag: Japan"), with
Unicode's character names as a fallback ("regional indicator symbol letter a"); an emoji with neither is
left out. The package's aliases (":heart:" for red heart) go into metadata.jsonl's `aliases` column, unused
by the trainers.
"""

from __future__ import annotations

import json
import random
import shutil
import unicodedata
from pathlib import Path

from .packaged_data import OPENMOJI_ATTRIBUTION, build_openmoji_folder

EMOJI_SIZE = 64
HELD_OUT_SHARE = 0.1
SPLIT_SEED = 0
VARIATION_SELECTOR = "\ufe0f"


def emoji_name(sequence: str) -> tuple[str | None, list[str]]:
    """(name, aliases) of an emoji given as hex codepoints ('1F600', '2764-FE0F'); name None when unknown."""
    import emoji

    text = "".join(chr(int(part, 16)) for part in sequence.split("-"))
    for candidate in (text, text + VARIATION_SELECTOR, text.replace(VARIATION_SELECTOR, "")):
        if candidate in emoji.EMOJI_DATA:
            data = emoji.EMOJI_DATA[candidate]
            return readable(data["en"]), [readable(alias) for alias in data.get("alias", [])]
    if len(text) == 1:
        name = unicodedata.name(text, None)
        return (name.lower(), []) if name else (None, [])
    return None, []


def readable(short_name: str) -> str:
    """':flag_Japan:' -> 'flag Japan', ':red_heart:' -> 'red heart'."""
    return short_name.strip(":").replace("_", " ")


def build_emoji_caption_folder(out_dir: Path, size: int = EMOJI_SIZE, limit: int | None = None) -> Path:
    """out_dir/train and out_dir/test, imagefolders with a metadata.jsonl each (file_name, text, aliases)."""
    out_dir = Path(out_dir)
    rendered = build_openmoji_folder(out_dir / "rendered", size=size, limit=limit)
    named = []
    for path in sorted(rendered.glob("*.png")):
        name, aliases = emoji_name(path.stem)
        if name:
            named.append((path, name, aliases))
    random.Random(SPLIT_SEED).shuffle(named)
    held_out = round(len(named) * HELD_OUT_SHARE)
    for split, rows in (("test", named[:held_out]), ("train", named[held_out:])):
        folder = out_dir / split
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for path, name, aliases in sorted(rows):
            shutil.move(path, folder / path.name)
            lines.append(json.dumps({"file_name": path.name, "text": name, "aliases": aliases}, ensure_ascii=False))
        (folder / "metadata.jsonl").write_text("\n".join(lines) + "\n")
        (folder / "ATTRIBUTION.txt").write_text(OPENMOJI_ATTRIBUTION)
    print(f"emoji captions: {len(named) - held_out} training and {held_out} held-out emoji in {out_dir}, "
          f"{len(list(rendered.glob('*.png')))} left out without a name")
    shutil.rmtree(rendered)
    return out_dir
