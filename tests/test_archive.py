"""Download-all zips: PNGs with their parameters, old zips pruned, a clear message when empty."""

import io
import os
import time
import zipfile

import pytest
from PIL import Image

from diffusion_app.service.generation.archive import MAX_AGE_SECONDS, zip_images
from diffusion_app.core.metadata import read_parameters, save_png, with_parameters


def test_zip_keeps_each_png_and_its_parameters(tmp_path):
    paths = [str(save_png(with_parameters(Image.new("RGB", (4, 4), (i, 0, 0)), f"Seed: {i}"), tmp_path / f"{i}.png"))
             for i in range(3)]
    archive = zip_images(paths, tmp_path / "downloads")
    with zipfile.ZipFile(archive) as zipped:
        names = zipped.namelist()
        images = [Image.open(io.BytesIO(zipped.read(name))) for name in names]
    assert names == ["image-000.png", "image-001.png", "image-002.png"]
    assert [read_parameters(image) for image in images] == ["Seed: 0", "Seed: 1", "Seed: 2"]


def test_zips_older_than_an_hour_are_pruned(tmp_path):
    image = str(save_png(Image.new("RGB", (4, 4)), tmp_path / "a.png"))
    old = zip_images([image], tmp_path / "downloads")
    stale = time.time() - MAX_AGE_SECONDS - 1
    os.utime(old, (stale, stale))
    recent = zip_images([image], tmp_path / "downloads")
    assert not old.exists() and recent.exists()


def test_nothing_to_zip_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no images to download yet"):
        zip_images([], tmp_path)
