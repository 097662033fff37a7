from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffusion_app.training.data import load_image_folder
from diffusion_app.training.packaged_data import (
    build_dataset_once,
    build_mnist_folder,
    build_openmoji_folder,
    mnist_arrays,
    openmoji_sequences,
)

OPENMOJI_LIMIT = 1200


@pytest.fixture(scope="module")
def mnist_folder(tmp_path_factory) -> Path:
    return build_mnist_folder(tmp_path_factory.mktemp("mnist"))


@pytest.fixture(scope="module")
def openmoji_folder(tmp_path_factory) -> Path:
    return build_openmoji_folder(tmp_path_factory.mktemp("openmoji"), size=32, limit=OPENMOJI_LIMIT)


def test_mnist_arrays_are_5000_uint8_digits():
    images, labels = mnist_arrays()
    assert images.max() > 200
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (5000,) and set(labels.tolist()) == set(range(10))


def test_mnist_folder_has_one_subfolder_per_digit(mnist_folder):
    assert sorted(path.name for path in mnist_folder.iterdir()) == [str(digit) for digit in range(10)]
    files = sorted(mnist_folder.glob("*/*.png"))
    assert len(files) == 5000
    for path in files[::250]:
        with Image.open(path) as image:
            assert image.mode == "L" and image.size == (28, 28)


def test_load_image_folder_reads_classes_from_subfolders(mnist_folder):
    images, labels, class_names = load_image_folder(mnist_folder, resolution=28, channels=1)
    assert class_names == [str(digit) for digit in range(10)]
    assert len(images) == len(labels) == 5000
    assert np.bincount(labels).tolist() == [500] * 10
    assert labels == sorted(labels)
    with Image.open(sorted((mnist_folder / "1").iterdir())[0]) as first_one:
        assert np.array_equal(np.asarray(images[500]), np.asarray(first_one))
    assert {(image.mode, image.size) for image in images} == {("L", (28, 28))}


def test_openmoji_lists_thousands_of_unicode_emoji():
    sequences = openmoji_sequences()
    assert len(sequences) > 4000
    assert sequences == sorted(sequences)
    assert "1F600" in sequences and not any(sequence.startswith("E") for sequence in sequences)


def test_openmoji_folder_is_colour_emoji_on_white(openmoji_folder):
    files = sorted(openmoji_folder.glob("*.png"))
    assert len(files) == OPENMOJI_LIMIT
    assert files[0].name == "0023-FE0F-20E3.png"
    for path in files[::50]:
        with Image.open(path) as image:
            assert image.mode == "RGB" and image.size == (32, 32)
            pixels = np.asarray(image)
        assert (pixels[0, 0] == 255).all() and (pixels[-1, -1] == 255).all()
        assert pixels.std() > 2.0
    assert "CC BY-SA 4.0" in (openmoji_folder / "ATTRIBUTION.txt").read_text()


def test_load_image_folder_reads_images_in_the_folder_as_unconditional(openmoji_folder):
    images, labels, class_names = load_image_folder(openmoji_folder, resolution=16, channels=1)
    assert labels is None and class_names is None
    assert len(images) == OPENMOJI_LIMIT
    assert {(image.mode, image.size) for image in images} == {("L", (16, 16))}


def test_load_image_folder_centre_crops_to_a_square(tmp_path):
    Image.new("L", (40, 20), 0).save(tmp_path / "wide.png")
    [image], _, _ = load_image_folder(tmp_path, resolution=8, channels=3)
    assert image.mode == "RGB" and image.size == (8, 8)


def test_load_image_folder_rejects_missing_and_empty_folders(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        load_image_folder(tmp_path / "missing", resolution=32, channels=3)
    with pytest.raises(ValueError, match="No images"):
        load_image_folder(tmp_path, resolution=32, channels=3)
    (tmp_path / "cats").mkdir()
    with pytest.raises(ValueError, match="No images"):
        load_image_folder(tmp_path, resolution=32, channels=3)
    with pytest.raises(ValueError, match="channels"):
        load_image_folder(tmp_path, resolution=32, channels=4)


def test_an_interrupted_dataset_build_is_started_again_not_taken_as_complete(tmp_path):
    builds = []

    def build(out_dir: Path, fail: bool = False) -> Path:
        builds.append(out_dir.name)
        out_dir.mkdir(parents=True)
        (out_dir / "0.png").write_bytes(b"first image")
        if fail:
            raise KeyboardInterrupt  # stopped half-way
        (out_dir / "1.png").write_bytes(b"second image")
        return out_dir

    folder = tmp_path / "work" / "dataset"
    with pytest.raises(KeyboardInterrupt):
        build_dataset_once(folder, lambda out: build(out, fail=True))
    assert not folder.exists()

    assert build_dataset_once(folder, build) == folder
    assert sorted(path.name for path in folder.iterdir()) == ["0.png", "1.png"]
    assert build_dataset_once(folder, build) == folder  # complete: not built again
    assert builds == ["dataset.partial", "dataset.partial"]
    assert not (tmp_path / "work" / "dataset.partial").exists()
