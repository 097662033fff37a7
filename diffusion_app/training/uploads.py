"""Training uploads: a folder's files or one .zip, checked image by image into a dataset and its report.

Nothing from an upload is written under its own name. Every accepted image is decoded, converted to
8-bit RGB or grayscale and saved as a numbered PNG in the upload's folder, so no name in a zip
(`../x`, `/etc/x`, a link) can reach outside it. Problems with the whole upload (too large, too many
files, an unsafe zip) refuse it with a ValueError; a file that is not a usable image is skipped and
the report says why.

Layout, as in the imagefolder convention: images at the top level train an unconditional model;
no image at the top level and one subfolder per class train a class-conditional one. A single
folder wrapping everything (`train/cat/1.png`) is looked through.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import statistics
import stat
import unicodedata
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageOps

from ..core.grid import image_grid
from .data import IMAGE_SUFFIXES

IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
MAX_IMAGE_PIXELS = 40_000_000  # more is refused as a decompression bomb
MIN_SIDE = 8  # the smallest training resolution
STORED_MAX_SIDE = 256  # the largest training resolution: stored images are scaled down to it
ZIP_EXPANSION_LIMIT = 4  # a zip may unpack to at most this many times the upload limit
IMAGES_FOLDER = "images"
REPORT_FILE = "report.json"
SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
PREVIEW_SIZE = 48
PREVIEW_COLUMNS = 8
PREVIEW_ROWS = 4


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    max_files: int

    @classmethod
    def from_settings(cls, settings) -> "UploadLimits":
        return cls(settings.max_upload_mb * 2**20, settings.max_upload_images)


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
        return cls(**values)


@dataclass(frozen=True)
class UploadEntry:
    path: PurePosixPath  # its name inside the upload
    size: int
    read: Callable[[], bytes]


class UnusableImage(ValueError):
    pass


def ingest_upload(files: Sequence[str | Path], destination: Path, limits: UploadLimits,
                  names: Sequence[str] | None = None) -> DatasetReport:
    """Check an upload (one .zip, or a folder's files) and store its images in destination.

    names: the files' paths inside the uploaded folder (default: their file names; browsers send
    no more than that).
    """
    paths = [Path(f) for f in files or ()]
    if not paths:
        raise ValueError("Nothing was uploaded: choose a folder of images or a .zip file.")
    if len(paths) == 1 and paths[0].suffix.lower() == ".zip":
        with open_zip(paths[0], limits) as archive:
            return store_dataset(zip_entries(archive, paths[0].name, limits), destination, paths[0].stem)
    return store_dataset(folder_entries(paths, names, limits), destination, "dataset")


def folder_entries(paths: list[Path], names: Sequence[str] | None, limits: UploadLimits) -> list[UploadEntry]:
    if len(paths) > limits.max_files:
        raise ValueError(f"The upload has {len(paths):,} files; at most {limits.max_files:,} are allowed.")
    sizes = [path.stat().st_size for path in paths]
    if sum(sizes) > limits.max_bytes:
        raise ValueError(f"The upload is {megabytes(sum(sizes))}; at most {megabytes(limits.max_bytes)} is allowed.")
    names = list(names) if names is not None else [path.name for path in paths]
    return [UploadEntry(member_path(name), size, path.read_bytes) for path, name, size in zip(paths, names, sizes)]


def open_zip(path: Path, limits: UploadLimits) -> zipfile.ZipFile:
    if path.stat().st_size > limits.max_bytes:
        raise ValueError(f"{path.name} is {megabytes(path.stat().st_size)}; at most "
                         f"{megabytes(limits.max_bytes)} is allowed.")
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as err:
        raise ValueError(f"{path.name} is not a readable .zip file ({err}).") from None


def zip_entries(archive: zipfile.ZipFile, zip_name: str, limits: UploadLimits) -> list[UploadEntry]:
    """The files of a zip, refusing the whole zip when any member is unsafe or it unpacks too large."""
    members = [info for info in archive.infolist() if not info.is_dir()]
    if len(members) > limits.max_files:
        raise ValueError(f"{zip_name} holds {len(members):,} files; at most {limits.max_files:,} are allowed.")
    for info in members:
        if stat.S_ISLNK(info.external_attr >> 16):
            raise ValueError(f"{zip_name} holds a symbolic link ({info.filename}); zips with links are refused.")
    unpacked = sum(info.file_size for info in members)
    if unpacked > limits.max_bytes * ZIP_EXPANSION_LIMIT:
        raise ValueError(f"{zip_name} unpacks to {megabytes(unpacked)}, more than {ZIP_EXPANSION_LIMIT} times the "
                         f"upload limit of {megabytes(limits.max_bytes)}; refused as a possible zip bomb.")
    return [UploadEntry(member_path(info.filename), info.file_size, lambda info=info: read_member(archive, info))
            for info in members]


def read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> bytes:
    with archive.open(info) as member:
        data = member.read(info.file_size + 1)  # a member never yields more than its declared size
    if len(data) > info.file_size:
        raise OSError("larger than the zip declares")
    return data


def member_path(name: str) -> PurePosixPath:
    """A name from an upload as a relative path; names that lead outside the upload refuse it."""
    text = name.replace("\\", "/")
    path = PurePosixPath(text)
    if text.startswith("/") or re.match(r"^[A-Za-z]:", text) or ".." in path.parts:
        raise ValueError(f"The upload holds a path that leads outside its folder ({name!r}); it is refused.")
    parts = [unicodedata.normalize("NFC", part) for part in path.parts if part not in ("", ".")]
    if not parts:
        raise ValueError(f"The upload holds a file without a name ({name!r}); it is refused.")
    return PurePosixPath(*parts)


def store_dataset(entries: list[UploadEntry], destination: Path, source: str) -> DatasetReport:
    """Decode, convert and store every image entry; the report lists what was kept and what was not."""
    report = DatasetReport(source=source)
    visible = []
    for entry in entries:
        if any(part.startswith(".") or part == "__MACOSX" for part in entry.path.parts):
            report.skipped.append(SkippedFile(str(entry.path), "hidden or system file"))
        else:
            visible.append(entry)
    images = [e for e in visible if e.path.suffix.lower() in IMAGE_SUFFIXES]
    not_image = f"not an image file (allowed: {', '.join(IMAGE_SUFFIXES)})"
    for entry in visible:
        if entry.path.suffix.lower() not in IMAGE_SUFFIXES:
            report.skipped.append(SkippedFile(str(entry.path), not_image))
    if not images:
        raise ValueError(f"No images in the upload: {len(entries)} file(s), none of them an image "
                         f"({', '.join(IMAGE_SUFFIXES)}).")
    paths = layout_paths([entry.path for entry in images])
    report.class_names = class_names(paths)
    names = [entry.path.name for entry in images]
    report.repeated_names = sum(1 for name in names if names.count(name) > 1)

    (destination / IMAGES_FOLDER).mkdir(parents=True, exist_ok=True)
    for entry, path in zip(images, paths):
        try:
            image, original, note = decode_image(entry.read())
        except UnusableImage as err:
            report.skipped.append(SkippedFile(str(entry.path), str(err)))
            continue
        except (OSError, zipfile.BadZipFile, RuntimeError, NotImplementedError) as err:
            report.skipped.append(SkippedFile(str(entry.path), f"could not be read ({err})"))
            continue
        file = f"{len(report.accepted):05d}.png"
        label = report.class_names.index(path.parts[0]) if report.class_names else None
        stored = scale_down(image, STORED_MAX_SIDE)
        stored.save(destination / IMAGES_FOLDER / file)
        report.accepted.append(AcceptedImage(file, str(entry.path), *original, stored.mode, label, note))
    if not report.accepted:
        reasons = sorted({skip.reason for skip in report.skipped})
        raise ValueError(f"None of the {len(images)} image file(s) could be used: {'; '.join(reasons)}.")
    report.save(destination)
    return report


def layout_paths(paths: list[PurePosixPath]) -> list[PurePosixPath]:
    """Drop folders that wrap every image (`train/cat/1.png` -> `cat/1.png`)."""
    while all(len(path.parts) > 1 for path in paths) and len({path.parts[0] for path in paths}) == 1:
        paths = [PurePosixPath(*path.parts[1:]) for path in paths]
    return paths


def class_names(paths: list[PurePosixPath]) -> list[str] | None:
    """One class per top-level folder, unless some image is at the top level (unconditional)."""
    if any(len(path.parts) == 1 for path in paths):
        return None
    names = sorted({path.parts[0] for path in paths})
    for name in names:
        if len(name) > 100 or any(unicodedata.category(c) == "Cc" for c in name):
            raise ValueError(f"Class folder name {name!r} is not usable: use at most 100 printable characters.")
    return names


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


def build_training_folder(upload: Path, report: DatasetReport, resolution: int, target: Path) -> int:
    """Copy the images usable at this resolution into target, in the imagefolder layout; returns how many."""
    usable = report.usable(resolution)
    if not usable:
        largest = max(image.shorter_side for image in report.accepted)
        raise ValueError(f"No image is at least {resolution}x{resolution} (the largest shorter side is {largest} px): "
                         "choose a lower resolution or upload larger images.")
    for image in usable:
        folder = target / report.class_names[image.label] if report.class_names else target
        folder.mkdir(parents=True, exist_ok=True)
        link_or_copy(upload / IMAGES_FOLDER / image.file, folder / image.file)
    return len(usable)


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


def megabytes(size: int) -> str:
    return f"{size / 2**20:,.1f} MB" if size >= 2**20 / 10 else f"{size:,} bytes"
