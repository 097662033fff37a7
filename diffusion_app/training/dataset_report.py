"""The report of a stored upload (what was accepted, skipped and captioned), and what is built from it: a
job's training folder and the preview grid the Training tab shows."""

from __future__ import annotations

import json
import os
import shutil
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from PIL import Image, ImageOps

from ..core.grid import image_grid
from .captions import CLIP_CONTEXT, METADATA_FILE, token_count

IMAGES_FOLDER = "images"
REPORT_FILE = "report.json"
PREVIEW_SIZE = 48
PREVIEW_COLUMNS = 8
PREVIEW_ROWS = 4


@dataclass(frozen=True)
class AcceptedImage:
    file: str  # the stored PNG, inside the upload's images folder
    name: str  # the name it was uploaded under
    width: int  # original size
    height: int
    mode: str  # original PIL mode
    stored_mode: str  # "RGB" or "L"
    label: int | None = None
    note: str | None = None  # how it was converted, when it was
    caption: str | None = None

    @property
    def shorter_side(self) -> int:
        return min(self.width, self.height)


@dataclass(frozen=True)
class SkippedFile:
    name: str
    reason: str


@dataclass
class DatasetReport:
    source: str  # the zip's or the folder's name, for naming the job
    accepted: list[AcceptedImage] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    class_names: list[str] | None = None
    repeated_names: int = 0  # files that share their name with another (each is kept)
    caption_problems: list[SkippedFile] = field(default_factory=list)  # captions that could not be used, and why

    @property
    def captioned(self) -> list[AcceptedImage]:
        return [image for image in self.accepted if image.caption]

    def caption_lengths(self) -> list[int]:
        """Each caption's length in CLIP tokens, its start and end tokens included."""
        return [token_count(image.caption) for image in self.captioned]

    def truncated_captions(self) -> int:
        """Captions longer than Stable Diffusion's text encoder reads (77 tokens): their end is cut off."""
        return sum(length > CLIP_CONTEXT for length in self.caption_lengths())

    def usable(self, resolution: int) -> list[AcceptedImage]:
        """The accepted images that are at least resolution x resolution."""
        return [image for image in self.accepted if image.shorter_side >= resolution]

    @property
    def grayscale(self) -> bool:
        return bool(self.accepted) and all(image.stored_mode == "L" for image in self.accepted)

    def class_counts(self, resolution: int) -> dict[str, int]:
        counts = dict.fromkeys(self.class_names or (), 0)
        for image in self.usable(resolution):
            counts[self.class_names[image.label]] += 1
        return counts

    def notes(self) -> dict[str, int]:
        """How many images each conversion touched, e.g. {'RGBA: transparency flattened onto white': 3}."""
        counts: dict[str, int] = {}
        for image in self.accepted:
            if image.note:
                counts[image.note] = counts.get(image.note, 0) + 1
        return counts

    def size_summary(self) -> dict[str, tuple[int, int, int]]:
        """(smallest, median, largest) original width and height."""
        if not self.accepted:
            return {}
        return {axis: (min(values), int(statistics.median(values)), max(values))
                for axis, values in (("width", [i.width for i in self.accepted]),
                                     ("height", [i.height for i in self.accepted]))}

    def save(self, folder: Path) -> None:
        (folder / REPORT_FILE).write_text(json.dumps(asdict(self)))

    @classmethod
    def load(cls, folder: Path) -> "DatasetReport":
        values = json.loads((folder / REPORT_FILE).read_text())
        values["accepted"] = [AcceptedImage(**item) for item in values["accepted"]]
        values["skipped"] = [SkippedFile(**item) for item in values["skipped"]]
        values["caption_problems"] = [SkippedFile(**item) for item in values.get("caption_problems", [])]
        return cls(**values)


def build_training_folder(upload: Path, report: DatasetReport, resolution: int, target: Path) -> int:
    """Copy the images usable at this resolution into target, in the imagefolder layout with their captions in a
    metadata.jsonl; returns how many."""
    usable = report.usable(resolution)
    if not usable:
        largest = max(image.shorter_side for image in report.accepted)
        raise ValueError(f"No image is at least {resolution}x{resolution} (the largest shorter side is {largest} px): "
                         "choose a lower resolution or upload larger images.")
    for image in usable:
        folder = target / report.class_names[image.label] if report.class_names else target
        folder.mkdir(parents=True, exist_ok=True)
        link_or_copy(upload / IMAGES_FOLDER / image.file, folder / image.file)
    captions = [image for image in usable if image.caption]
    if captions:
        (target / METADATA_FILE).write_text("".join(json.dumps({"file_name": caption_path(report, image),
                                                                "text": image.caption}) + "\n" for image in captions))
    return len(usable)


def caption_path(report: DatasetReport, image: AcceptedImage) -> str:
    """An image's file_name in the training folder's metadata.jsonl."""
    return f"{report.class_names[image.label]}/{image.file}" if report.class_names else image.file


def link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def preview_grid(upload: Path, report: DatasetReport, resolution: int) -> Image.Image:
    """Thumbnails of the usable images: a row per class (the first classes), else the first few rows."""
    usable = report.usable(resolution) or report.accepted
    if report.class_names:
        chosen = []
        for label in range(min(len(report.class_names), PREVIEW_ROWS)):
            row = [image for image in usable if image.label == label][:PREVIEW_COLUMNS]
            chosen += row + [None] * (PREVIEW_COLUMNS - len(row))
    else:
        chosen = usable[: PREVIEW_COLUMNS * PREVIEW_ROWS]
    blank = Image.new("RGB", (PREVIEW_SIZE, PREVIEW_SIZE), "white")
    thumbnails = [blank if image is None else thumbnail(upload / IMAGES_FOLDER / image.file) for image in chosen]
    return image_grid(thumbnails, min(PREVIEW_COLUMNS, len(thumbnails)))


def thumbnail(path: Path) -> Image.Image:
    with Image.open(path) as image:
        return ImageOps.fit(image.convert("RGB"), (PREVIEW_SIZE, PREVIEW_SIZE), Image.Resampling.LANCZOS)
