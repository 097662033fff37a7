"""Zip files of generated images for "download all", kept for an hour under the data dir."""

from __future__ import annotations

import time
import uuid
import zipfile
from pathlib import Path

MAX_AGE_SECONDS = 3600


def zip_images(paths: list[str], folder: Path) -> Path:
    """Pack PNG files (their parameters chunk kept byte for byte) into a new zip; prune zips older than an hour."""
    if not paths:
        raise ValueError("There are no images to download yet: generate some first.")
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.zip"):
        if time.time() - old.stat().st_mtime > MAX_AGE_SECONDS:
            old.unlink(missing_ok=True)
    archive = folder / f"images-{uuid.uuid4().hex[:8]}.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for index, path in enumerate(paths):
            zipped.write(path, f"image-{index:03d}{Path(path).suffix or '.png'}")
    return archive
