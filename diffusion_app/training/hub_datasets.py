"""Training data from the `datasets` library: a hub dataset id (`huggan/smithsonian_butterflies_subset`,
downloaded on first use and cached) or a local dataset folder, loaded with `load_dataset` as the diffusers
training examples and the Hugging Face course do. Columns are chosen by name: an image column, and
optionally a caption column (text-to-image) or a label column (class-conditional)."""

from __future__ import annotations

import io
import json
from pathlib import Path, PurePosixPath

from PIL import Image

from .captions import METADATA_FILE
from .data import TrainingItems
from .dataset_report import DatasetReport
from .uploads import UploadEntry, UploadLimits, store_dataset


def load_split(name: str, split: str = "train"):
    """`datasets.load_dataset(name, split=split)`; any failure (unknown id, no network, no such split)
    becomes a ValueError that says what was asked for."""
    from datasets import load_dataset

    try:
        return load_dataset(name, split=split)
    except Exception as err:  # the library raises many types: FileNotFoundError, ConnectionError, ValueError...
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"Could not load split {split!r} of dataset {name!r}: {reason}") from None


def check_columns(dataset, image_column: str, caption_column: str | None, label_column: str | None) -> None:
    for role, column in (("image", image_column), ("caption", caption_column), ("label", label_column)):
        if column and column not in dataset.column_names:
            raise ValueError(f"The dataset has no {role} column {column!r}; its columns are "
                             f"{', '.join(dataset.column_names)}.")


def label_names(dataset, label_column: str) -> tuple[list[int], list[str]]:
    """Labels as indices, and the class names: a ClassLabel's own names, else the sorted distinct values."""
    feature = dataset.features[label_column]
    values = dataset[label_column]
    if hasattr(feature, "names"):
        return [int(value) for value in values], list(feature.names)
    names = sorted({str(value) for value in values})
    return [names.index(str(value)) for value in values], names


def raw_images(dataset, image_column: str) -> list[bytes]:
    """Each row's image as its encoded file bytes, undecoded, so that it goes through the same checks as an
    upload (decompression bombs, truncation, modes)."""
    from datasets import Image as ImageFeature

    rows = dataset.cast_column(image_column, ImageFeature(decode=False))[image_column]
    return [row["bytes"] if row.get("bytes") else Path(row["path"]).read_bytes() for row in rows]


def dataset_items(name: str, split: str, image_column: str, caption_column: str | None,
                  label_column: str | None) -> TrainingItems:
    """The trainer's view of a dataset: decoded images with their captions or labels."""
    dataset = load_split(name, split)
    check_columns(dataset, image_column, caption_column, label_column)
    images = [Image.open(io.BytesIO(data)) for data in raw_images(dataset, image_column)]
    labels = class_names = captions = None
    if label_column:
        labels, class_names = label_names(dataset, label_column)
    if caption_column:
        captions = [" ".join(str(text).split()) or None if text is not None else None
                    for text in dataset[caption_column]]
    return TrainingItems(images, labels, class_names, captions)


def ingest_dataset(name: str, split: str, image_column: str, caption_column: str | None, label_column: str | None,
                   destination: Path, limits: UploadLimits) -> DatasetReport:
    """Store a dataset's images as an upload is stored, through the same checks and report: each row becomes a
    numbered image (in its class's folder when labelled), its caption a line of a metadata.jsonl."""
    dataset = load_split(name, split)
    check_columns(dataset, image_column, caption_column, label_column)
    if len(dataset) > limits.max_files:
        raise ValueError(f"Split {split!r} of {name!r} has {len(dataset):,} rows; at most {limits.max_files:,} "
                         "images are allowed.")
    images = raw_images(dataset, image_column)
    if sum(map(len, images)) > limits.max_bytes:
        raise ValueError(f"The images of {name!r} ({split}) are larger than the upload limit.")
    folders = [""] * len(images)
    if label_column:
        labels, names = label_names(dataset, label_column)
        folders = [f"{names[label]}/" for label in labels]
    paths = [PurePosixPath(f"{folder}{index:05d}.png") for index, folder in enumerate(folders)]
    entries = [UploadEntry(path, len(data), lambda data=data: data) for path, data in zip(paths, images)]
    if caption_column:
        lines = "".join(json.dumps({"file_name": str(path), "text": text}) + "\n"
                        for path, text in zip(paths, dataset[caption_column]) if isinstance(text, str))
        entries.append(UploadEntry(PurePosixPath(METADATA_FILE), len(lines), lines.encode))
    return store_dataset(entries, destination, name.rstrip("/").rsplit("/", 1)[-1])
