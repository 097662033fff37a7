"""Captions for text-to-image training, in the two conventions people bring them in:

- a `metadata.jsonl` beside the images, one JSON object a line with `file_name` (relative to the file's
  folder) and `text`, as the `datasets` imagefolder loader reads it;
- a `.txt` file of the same name beside each image (`cat.png` and `cat.txt`), as kohya_ss and ComfyUI do.

A metadata.jsonl caption wins over a .txt one. A caption that cannot be used (not UTF-8, empty, a
metadata line that is not JSON) is reported with its reason and the image counts as uncaptioned.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import PurePosixPath

METADATA_FILE = "metadata.jsonl"
CAPTION_SUFFIX = ".txt"
CAPTION_COLUMN = "text"
MAX_CAPTION_CHARACTERS = 2000
CLIP_CONTEXT = 77  # Stable Diffusion's text encoder reads 77 tokens, its start and end tokens included


@dataclass(frozen=True)
class CaptionProblem:
    name: str  # the file (or metadata line) the caption came from
    reason: str


def decode_caption(data: bytes) -> tuple[str | None, str | None]:
    """(caption, None), or (None, why it cannot be used)."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        return None, f"not UTF-8 text ({err.reason} at byte {err.start})"
    text = " ".join(text.split())
    if not text:
        return None, "empty caption"
    if len(text) > MAX_CAPTION_CHARACTERS:
        return None, f"longer than {MAX_CAPTION_CHARACTERS} characters"
    return text, None


def parse_metadata(data: bytes, source: str, column: str = CAPTION_COLUMN
                   ) -> tuple[dict[str, str], list[CaptionProblem]]:
    """A metadata.jsonl's captions by file_name (as written, relative to its folder), and its unusable lines."""
    captions, problems = {}, []
    try:
        lines = data.decode("utf-8-sig").splitlines()
    except UnicodeDecodeError:
        return {}, [CaptionProblem(source, "not UTF-8 text")]
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{source} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            problems.append(CaptionProblem(where, f"not JSON ({err.msg})"))
            continue
        if not isinstance(record, dict) or not isinstance(record.get("file_name"), str):
            problems.append(CaptionProblem(where, "has no file_name"))
            continue
        if not isinstance(record.get(column), str):
            problems.append(CaptionProblem(where, f"has no {column!r} text for {record['file_name']}"))
            continue
        caption, reason = decode_caption(record[column].encode())
        if reason:
            problems.append(CaptionProblem(f"{where} ({record['file_name']})", reason))
        else:
            captions[str(PurePosixPath(record["file_name"]))] = caption
    return captions, problems


def match_captions(image_paths: list[PurePosixPath], texts: dict[PurePosixPath, bytes], column: str = CAPTION_COLUMN
                   ) -> tuple[list[str | None], list[CaptionProblem]]:
    """The caption of each image from the caption files among `texts` (path -> contents): metadata.jsonl files
    (their file_name relative to their own folder) and same-name .txt files."""
    by_path: dict[PurePosixPath, str] = {}
    problems: list[CaptionProblem] = []
    for path, data in texts.items():
        if path.name == METADATA_FILE:
            captions, found = parse_metadata(data, str(path), column)
            problems += found
            by_path.update({path.parent / name: caption for name, caption in captions.items()})
    captions = []
    for image in image_paths:
        caption = by_path.get(image)
        sidecar = image.with_suffix(CAPTION_SUFFIX)
        if caption is None and sidecar in texts:
            caption, reason = decode_caption(texts[sidecar])
            if reason:
                problems.append(CaptionProblem(str(sidecar), reason))
        captions.append(caption)
    return captions, problems


@functools.cache
def clip_tokenizer():
    """CLIP's byte-level BPE as open_clip ships it: how Stable Diffusion and the emoji models count tokens."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def token_count(caption: str) -> int:
    """Tokens the text encoder reads for this caption, its start and end tokens included."""
    return len(clip_tokenizer().encode(caption)) + 2
