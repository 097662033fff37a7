"""Training uploads: a folder's files or one .zip, checked image by image into a dataset and its report.

Nothing from an upload is written under its own name. Every accepted image is decoded, converted to
8-bit RGB or grayscale and saved as a numbered PNG in the upload's folder, so no name in a zip
(`../x`, `/etc/x`, a link) can reach outside it. Problems with the whole upload (too large, too many
files, an unsafe zip) refuse it with a ValueError; a file that is not a usable image is skipped and
the report says why.

Layout, as in the imagefolder convention: images at the top level train an unconditional model;
no image at the top level and one subfolder per class train a class-conditional one. A single
folder wrapping everything (`train/cat/1.png`) is looked through. Captions come in a metadata.jsonl or
as a .txt beside each image (captions.py); the report counts them and lists those it could not use.
"""

from __future__ import annotations

import re
import stat
import unicodedata
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Sequence

from .captions import CAPTION_SUFFIX, METADATA_FILE, match_captions
from .data import IMAGE_SUFFIXES
from .dataset_report import IMAGES_FOLDER, AcceptedImage, DatasetReport, SkippedFile
from .image_checks import STORED_MAX_SIDE, UnusableImage, decode_image, scale_down

ZIP_EXPANSION_LIMIT = 4  # a zip may unpack to at most this many times the upload limit


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int
    max_files: int

    @classmethod
    def from_settings(cls, settings) -> "UploadLimits":
        return cls(settings.max_upload_mb * 2**20, settings.max_upload_images)


@dataclass(frozen=True)
class UploadEntry:
    path: PurePosixPath  # its name inside the upload
    size: int
    read: Callable[[], bytes]


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
    sidecars = {entry.path.with_suffix(CAPTION_SUFFIX) for entry in images}
    caption_files = [e for e in visible if e.path.name == METADATA_FILE or e.path in sidecars]
    not_image = (f"not an image file (allowed: {', '.join(IMAGE_SUFFIXES)}), nor a caption (a metadata.jsonl, or a "
                 f"{CAPTION_SUFFIX} named like its image)")
    for entry in visible:
        if entry not in images and entry not in caption_files:
            report.skipped.append(SkippedFile(str(entry.path), not_image))
    if not images:
        raise ValueError(f"No images in the upload: {len(entries)} file(s), none of them an image "
                         f"({', '.join(IMAGE_SUFFIXES)}).")
    captions, problems = match_captions([entry.path for entry in images],
                                        {entry.path: entry.read() for entry in caption_files})
    report.caption_problems = [SkippedFile(problem.name, problem.reason) for problem in problems]
    paths = layout_paths([entry.path for entry in images])
    report.class_names = class_names(paths)
    names = [entry.path.name for entry in images]
    report.repeated_names = sum(1 for name in names if names.count(name) > 1)

    (destination / IMAGES_FOLDER).mkdir(parents=True, exist_ok=True)
    for entry, path, caption in zip(images, paths, captions):
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
        report.accepted.append(AcceptedImage(file, str(entry.path), *original, stored.mode, label, note, caption))
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


def megabytes(size: int) -> str:
    return f"{size / 2**20:,.1f} MB" if size >= 2**20 / 10 else f"{size:,} bytes"
