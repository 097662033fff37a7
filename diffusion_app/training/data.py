"""The training images, with their class labels or captions, and the dataset the trainer batches.

A dataset is a folder in the imagefolder layout: images directly in the folder (unconditional, or
captioned by a metadata.jsonl or .txt files, see captions.py), or one subfolder per class whose name is
the class name (class-conditional). Or a `datasets` dataset (hub_datasets.py) with an image column and,
optionally, a caption or a label column; sources.py reads whichever a config names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
import torch
from PIL import Image, ImageOps

from .captions import CAPTION_SUFFIX, METADATA_FILE, match_captions

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")


@dataclass
class TrainingItems:
    images: list  # Path or PIL image, one per item
    labels: list[int] | None = None  # class-conditional data
    class_names: list[str] | None = None
    captions: list[str | None] | None = None  # captioned data; None where an image has no caption


def image_files(folder: Path) -> list[Path]:
    """The image files directly in folder, sorted by name."""
    return sorted(path for path in folder.iterdir() if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES)


def load_image(path: Path, resolution: int, channels: int) -> Image.Image:
    """Open an image as 'L' (channels=1) or 'RGB' (channels=3), centre-cropped and resized to a square."""
    image = open_image(path, "L" if channels == 1 else "RGB")
    if image.size != (resolution, resolution):
        image = ImageOps.fit(image, (resolution, resolution), Image.Resampling.LANCZOS)
    return image


def scan_image_folder(folder: Path) -> tuple[list[Path], list[int] | None, list[str] | None]:
    """Find an imagefolder's files: (paths, labels, class names); labels and names are None when unconditional."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"Dataset folder {folder} does not exist or is not a folder.")
    files = image_files(folder)
    class_dirs = sorted(path for path in folder.iterdir() if path.is_dir() and not path.name.startswith("."))
    if files or not class_dirs:
        if not files:
            raise ValueError(f"No images in {folder}: put image files ({', '.join(IMAGE_SUFFIXES)}) directly "
                             "in the folder, or in one subfolder per class.")
        return files, None, None
    paths, labels = [], []
    for label, class_dir in enumerate(class_dirs):
        class_files = image_files(class_dir)
        paths += class_files
        labels += [label] * len(class_files)
    if not paths:
        raise ValueError(f"No images in the class subfolders of {folder}.")
    return paths, labels, [path.name for path in class_dirs]


def load_image_folder(folder: Path, resolution: int, channels: int
                      ) -> tuple[list[Image.Image], list[int] | None, list[str] | None]:
    """Read an imagefolder: (images, labels, class names); labels and names are None when unconditional."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}.")
    paths, labels, class_names = scan_image_folder(folder)
    return [load_image(path, resolution, channels) for path in paths], labels, class_names


def folder_items(folder: Path, caption_column: str = "text") -> TrainingItems:
    """An imagefolder's images with their labels, or with their captions when it has caption files."""
    folder = Path(folder)
    paths, labels, class_names = scan_image_folder(folder)
    caption_files = [path for path in folder.rglob("*") if path.name == METADATA_FILE
                     or (path.suffix == CAPTION_SUFFIX and path.is_file())]
    captions = None
    if caption_files:
        relative = [PurePosixPath(path.relative_to(folder).as_posix()) for path in paths]
        texts = {PurePosixPath(path.relative_to(folder).as_posix()): path.read_bytes() for path in caption_files}
        captions, _ = match_captions(relative, texts, caption_column)
    return TrainingItems(paths, labels, class_names, captions)


class EpochSeededDraws:
    """Random crops and flips drawn from (seed, epoch, index) rather than the global RNG. accelerate's loader
    fetches one batch ahead, so global draws made in a dataset land before the checkpoint that should follow
    them, and a run resumed mid-epoch would flip different images than an uninterrupted one."""

    seed = 0
    epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Called by the trainer before each epoch."""
        self.epoch = epoch

    def draws_for(self, index: int) -> torch.Generator:
        return torch.Generator().manual_seed(hash((self.seed, self.epoch, index)) % 2**63)


class ImageDataset(EpochSeededDraws, torch.utils.data.Dataset):
    """Training items as {"pixel_values": [-1, 1] CHW tensor, "class_labels": int, "captions": str}.

    Images are held in memory with their shorter side at `resolution`; each item is then cropped
    (centre or random) and optionally flipped, as in the diffusers training examples. Uncaptioned images
    of captioned data get the empty caption (they train the unconditional prediction).
    """

    def __init__(self, items: TrainingItems | Path, resolution: int, channels: int, center_crop: bool = True,
                 random_flip: bool = False, class_conditional: bool | None = None, seed: int = 0):
        if not isinstance(items, TrainingItems):
            items = folder_items(Path(items))
        labels, class_names = items.labels, items.class_names
        if class_conditional and labels is None:
            raise ValueError("Class-conditional training needs class labels: one subfolder per class, or a "
                             "label column.")
        if class_conditional is False:
            labels = class_names = None
        mode = "L" if channels == 1 else "RGB"
        self.images = [resize_shorter_side(as_image(image, mode), resolution) for image in items.images]
        self.labels = labels
        self.class_names = class_names
        self.captions = None if items.captions is None else [caption or "" for caption in items.captions]
        self.resolution = resolution
        self.center_crop = center_crop
        self.random_flip = random_flip
        self.seed = seed

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict:
        image = self.images[index]
        draws = self.draws_for(index)
        spare_x, spare_y = image.width - self.resolution, image.height - self.resolution
        if self.center_crop:
            left, top = spare_x // 2, spare_y // 2
        else:
            left, top = (int(torch.randint(0, spare + 1, (), generator=draws)) for spare in (spare_x, spare_y))
        image = image.crop((left, top, left + self.resolution, top + self.resolution))
        pixels = torch.from_numpy(np.array(image, dtype=np.float32)) / 127.5 - 1
        pixels = pixels.unsqueeze(0) if pixels.ndim == 2 else pixels.permute(2, 0, 1)
        if self.random_flip and torch.rand((), generator=draws) < 0.5:
            pixels = pixels.flip(-1)
        item = {"pixel_values": pixels}
        if self.labels is not None:
            item["class_labels"] = self.labels[index]
        if self.captions is not None:
            item["captions"] = self.captions[index]
        return item


def as_image(image, mode: str) -> Image.Image:
    return open_image(image, mode) if isinstance(image, Path) else image.convert(mode)


def open_image(path: Path, mode: str) -> Image.Image:
    with Image.open(path) as image:
        return image.convert(mode)


def resize_shorter_side(image: Image.Image, size: int) -> Image.Image:
    scale = size / min(image.size)
    if scale == 1:
        return image
    return image.resize((max(size, round(image.width * scale)), max(size, round(image.height * scale))),
                        Image.Resampling.BICUBIC)
