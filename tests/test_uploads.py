"""Training uploads: every kind of bad input gets a clear message and nothing is written outside the upload."""

from __future__ import annotations

import io
from dataclasses import replace
import json
import stat
import struct
import unicodedata
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from diffusion_app.service.jobs.manager import JobManager
from diffusion_app.training.dataset_report import DatasetReport, build_training_folder, preview_grid
from diffusion_app.training.image_checks import MAX_IMAGE_PIXELS
from diffusion_app.training.uploads import UploadLimits, ingest_upload

LIMITS = UploadLimits(max_bytes=2**20, max_files=50)


def png_bytes(size: tuple[int, int] = (16, 16), seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return encode(Image.fromarray(pixels))


def encode(image: Image.Image, format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares width x height pixels but holds almost no data: what a decompression bomb looks like."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\0" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def write_files(folder: Path, files: dict[str, bytes]) -> list[Path]:
    paths = []
    for index, (name, data) in enumerate(files.items()):
        path = folder / f"{index:03d}-{Path(name).name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        paths.append(path)
    return paths


def write_zip(path: Path, members: dict[str, bytes] | list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items() if isinstance(members, dict) else members:
            archive.writestr(name, data)
    return path


def every_file(root: Path) -> set[Path]:
    return {path for path in root.rglob("*") if path.is_file() or path.is_symlink()}


@pytest.fixture
def manager(studio) -> JobManager:
    jobs = JobManager(studio)
    jobs.uploads.limits = LIMITS
    return jobs


@pytest.fixture
def ingest(manager, tmp_path):
    """inspect_upload(files, names) that also checks nothing is written outside the upload's own folder."""

    def run(files: list[Path], names: list[str] | None = None) -> tuple[Path, DatasetReport]:
        before = every_file(tmp_path)
        try:
            upload_id, report = manager.uploads.inspect(files, names)
        except ValueError:
            assert every_file(tmp_path) == before, "a refused upload left files behind"
            raise
        folder = manager.uploads.folder / upload_id
        assert all(folder in path.parents for path in every_file(tmp_path) - before)
        return folder, report

    return run


def test_folder_upload_gives_a_report_and_a_dataset(ingest, tmp_path):
    files = {f"{i}.png": png_bytes(size=(20 + i, 16), seed=i) for i in range(5)}
    folder, report = ingest(write_files(tmp_path / "upload", files), names=list(files))
    assert report.class_names is None and not report.skipped
    assert [(image.name, image.width, image.height) for image in report.accepted] == \
        [(f"{i}.png", 20 + i, 16) for i in range(5)]
    assert report.size_summary() == {"width": (20, 22, 24), "height": (16, 16, 16)}
    assert DatasetReport.load(folder) == report
    assert preview_grid(folder, report, 16).size == (5 * 48 + 4 * 2, 48)
    count = build_training_folder(folder, report, 16, tmp_path / "train")
    assert count == 5 and len(list((tmp_path / "train").glob("*.png"))) == 5


def test_zip_with_class_subfolders_in_a_wrapping_folder(ingest, tmp_path):
    members = {f"train/{label}/{i}.png": png_bytes(seed=i) for label in ("dog", "cat") for i in range(3)}
    members["train/README.txt"] = b"my pets"
    folder, report = ingest([write_zip(tmp_path / "pets.zip", members)])
    assert report.source == "pets" and report.class_names == ["cat", "dog"]
    assert report.class_counts(16) == {"cat": 3, "dog": 3}
    assert [skip.name for skip in report.skipped] == ["train/README.txt"]
    assert "not an image file" in report.skipped[0].reason
    build_training_folder(folder, report, 16, tmp_path / "train")
    assert sorted(p.parent.name for p in (tmp_path / "train").rglob("*.png")) == ["cat"] * 3 + ["dog"] * 3


def test_images_at_the_top_level_make_an_unconditional_dataset(ingest, tmp_path):
    members = {"a.png": png_bytes(seed=1), "extra/b.png": png_bytes(seed=2)}
    _, report = ingest([write_zip(tmp_path / "mixed.zip", members)])
    assert report.class_names is None and len(report.accepted) == 2


@pytest.mark.parametrize("files, message", [
    ([], "Nothing was uploaded"),
    (["notes.txt", "data.csv"], "No images in the upload: 2 file\\(s\\), none of them an image"),
    (["broken.png"], "None of the 1 image file\\(s\\) could be used: corrupt, truncated or unreadable"),
])
def test_uploads_without_usable_images_are_refused(ingest, tmp_path, files, message):
    contents = {"notes.txt": b"hello", "data.csv": b"a,b\n1,2\n", "broken.png": b"this is not a png"}
    with pytest.raises(ValueError, match=message):
        ingest(write_files(tmp_path / "upload", {name: contents[name] for name in files}), names=files)
    assert not any((tmp_path / "data" / "uploads").glob("*"))


def test_bad_files_are_skipped_with_their_reason(ingest, tmp_path):
    good = png_bytes(size=(32, 32))
    files = {
        "good.png": good,
        "notes.txt": b"not an image",
        "truncated.png": good[: len(good) // 2],
        "garbage.jpg": b"\xff\xd8\xff" + b"\0" * 40,
        "bomb.png": png_header(8000, 8000),
        "huge-bomb.png": png_header(100_000, 100_000),
        "tiny.png": png_bytes(size=(4, 4)),
        "float.tiff.png": encode(Image.new("F", (16, 16), 0.5), "TIFF"),
    }
    _, report = ingest(write_files(tmp_path / "upload", files), names=list(files))
    assert [image.name for image in report.accepted] == ["good.png"]
    reasons = {skip.name: skip.reason for skip in report.skipped}
    assert reasons["notes.txt"].startswith("not an image file")
    assert reasons["truncated.png"].startswith("corrupt, truncated or unreadable image")
    assert reasons["garbage.jpg"].startswith("corrupt, truncated or unreadable image")
    assert reasons["bomb.png"] == (f"8000x8000 is 64,000,000 pixels, more than {MAX_IMAGE_PIXELS:,} "
                                   "(refused as a possible decompression bomb)")
    assert "decompression bomb" in reasons["huge-bomb.png"]
    assert reasons["tiny.png"] == "too small: 4x4; the smallest training resolution is 8"
    assert reasons["float.tiff.png"] == "TIFF images are not accepted (use PNG, JPEG, WEBP, BMP, GIF)"


@pytest.mark.parametrize("name", ["../evil.png", "images/../../evil.png", "/tmp/evil.png", "C:\\evil.png",
                                  "..\\evil.png"])
def test_zip_paths_leading_outside_refuse_the_zip(ingest, tmp_path, name):
    archive = write_zip(tmp_path / "slip.zip", {"ok.png": png_bytes(), name: png_bytes(seed=1)})
    with pytest.raises(ValueError, match="holds a path that leads outside its folder"):
        ingest([archive])
    assert not (tmp_path / "evil.png").exists() and not Path("/tmp/evil.png").exists()


def test_zip_with_a_symlink_is_refused(ingest, tmp_path):
    link = zipfile.ZipInfo("cats/link.png")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive = write_zip(tmp_path / "links.zip", [("cats/a.png", png_bytes()), (link, b"/etc/passwd")])
    with pytest.raises(ValueError, match=r"holds a symbolic link \(cats/link.png\)"):
        ingest([archive])


def test_zip_bomb_is_refused_before_unpacking(ingest, tmp_path):
    archive = write_zip(tmp_path / "bomb.zip", {"a.png": png_bytes(), "zeros.bmp": b"\0" * (5 * 2**20)})
    assert archive.stat().st_size < 2**20
    with pytest.raises(ValueError, match="unpacks to 5.0 MB, more than 4 times the upload limit of 1.0 MB"):
        ingest([archive])


def test_uploads_over_the_limits_are_refused(manager, tmp_path):
    files = write_files(tmp_path / "upload", {f"{i}.png": png_bytes(seed=i) for i in range(4)})
    manager.uploads.limits = UploadLimits(max_bytes=2**20, max_files=3)
    with pytest.raises(ValueError, match="The upload has 4 files; at most 3 are allowed"):
        manager.uploads.inspect(files)
    with pytest.raises(ValueError, match="holds 4 files; at most 3 are allowed"):
        manager.uploads.inspect([write_zip(tmp_path / "many.zip", {f"{i}.png": png_bytes() for i in range(4)})])
    manager.uploads.limits = UploadLimits(max_bytes=1000, max_files=50)
    with pytest.raises(ValueError, match=r"The upload is [\d,]+ bytes; at most 1,000 bytes is allowed"):
        manager.uploads.inspect(files)
    with pytest.raises(ValueError, match="not a readable .zip file"):
        manager.uploads.inspect([write_files(tmp_path / "fake", {"data.zip": b"PK not really"})[0]])


def test_every_image_mode_becomes_8_bit_rgb_or_grayscale(ingest, tmp_path):
    palette = Image.new("P", (16, 16), 3)
    palette.putpalette([0, 0, 0, 10, 20, 30, 40, 50, 60, 200, 100, 50] + [0] * 756)
    sixteen = np.full((16, 16), 65535, dtype=np.uint16)
    sixteen[:, :8] = 32896  # 128 * 257
    files = {
        "rgba.png": encode(Image.new("RGBA", (16, 16), (255, 0, 0, 0))),  # transparent red
        "palette.png": encode(palette),
        "gray.png": encode(Image.new("L", (16, 16), 77)),
        "sixteen.png": encode(Image.fromarray(sixteen)),
        "gray-alpha.png": encode(Image.new("LA", (16, 16), (0, 0))),
        "bits.png": encode(Image.new("1", (16, 16), 1)),
        "cmyk.jpg": encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG"),
    }
    folder, report = ingest(write_files(tmp_path / "upload", files), names=list(files))
    assert not report.skipped
    stored = {image.name: Image.open(folder / "images" / image.file) for image in report.accepted}
    modes = {image.name: image.mode for image in report.accepted}
    assert modes == {"rgba.png": "RGBA", "palette.png": "P", "gray.png": "L", "sixteen.png": "I;16",
                     "gray-alpha.png": "LA", "bits.png": "1", "cmyk.jpg": "CMYK"}
    assert {name: image.mode for name, image in stored.items()} == {
        "rgba.png": "RGB", "palette.png": "RGB", "gray.png": "L", "sixteen.png": "L", "gray-alpha.png": "L",
        "bits.png": "L", "cmyk.jpg": "RGB"}
    assert stored["rgba.png"].getpixel((0, 0)) == (255, 255, 255)  # transparency flattened onto white
    assert stored["palette.png"].getpixel((0, 0)) == (200, 100, 50)
    assert stored["sixteen.png"].getpixel((0, 0)) == 128 and stored["sixteen.png"].getpixel((15, 0)) == 255
    assert stored["gray-alpha.png"].getpixel((0, 0)) == 255 and stored["bits.png"].getpixel((0, 0)) == 255
    assert report.notes()["I;16: 16-bit grayscale scaled to 8 bits"] == 1
    assert not report.grayscale


def test_images_smaller_than_the_resolution_are_left_out(ingest, tmp_path):
    files = {"small.png": png_bytes(size=(12, 30)), "large.png": png_bytes(size=(40, 32))}
    folder, report = ingest(write_files(tmp_path / "upload", files), names=list(files))
    assert [image.name for image in report.usable(16)] == ["large.png"]
    assert len(report.usable(8)) == 2
    with pytest.raises(ValueError, match="No image is at least 64x64 \\(the largest shorter side is 32 px\\)"):
        build_training_folder(folder, report, 64, tmp_path / "train")
    assert not (tmp_path / "train").exists()


def test_duplicate_and_unicode_names_are_kept_apart(ingest, tmp_path):
    decomposed = unicodedata.normalize("NFD", "café")
    members = [("猫/1.png", png_bytes(seed=1)), (f"{decomposed}/1.png", png_bytes(seed=2)),
               ("猫/ü 2.png", png_bytes(seed=3)), (f"{decomposed}/1.png", png_bytes(seed=4))]
    with pytest.warns(UserWarning, match="Duplicate name"):
        archive = write_zip(tmp_path / "名前.zip", members)
    folder, report = ingest([archive])
    assert report.class_names == ["café", "猫"]  # NFC, as typed on any system
    assert report.source == "名前"
    assert len(report.accepted) == 4 and report.repeated_names == 3
    assert len({image.file for image in report.accepted}) == 4
    build_training_folder(folder, report, 16, tmp_path / "train")
    assert sorted(p.parent.name for p in (tmp_path / "train").rglob("*.png")) == ["café"] * 2 + ["猫"] * 2

    names = ["dog/1.png", "cat/1.png"]  # two folders' files sent under the same name
    _, flat = ingest(write_files(tmp_path / "flat", dict(zip(names, [png_bytes(seed=5), png_bytes(seed=6)]))),
                     names=["1.png", "1.png"])
    assert len(flat.accepted) == 2 and flat.repeated_names == 2


def test_hidden_and_system_files_are_skipped(ingest, tmp_path):
    members = {"pets/a.png": png_bytes(), "__MACOSX/pets/._a.png": b"\0\5\26\7", "pets/.DS_Store": b"\0"}
    _, report = ingest([write_zip(tmp_path / "mac.zip", members)])
    assert len(report.accepted) == 1
    assert {skip.reason for skip in report.skipped} == {"hidden or system file"}


def test_ingest_upload_alone_writes_only_into_its_destination(tmp_path):
    archive = write_zip(tmp_path / "in" / "set.zip", {"a/x.png": png_bytes(), "b/y.png": png_bytes(seed=2)})
    report = ingest_upload([archive], tmp_path / "out", LIMITS)
    assert report.class_names == ["a", "b"]
    out = tmp_path / "out"
    assert every_file(tmp_path) == {archive, out / "report.json", out / "images" / "00000.png",
                                    out / "images" / "00001.png"}


def test_captions_in_a_zip_are_reported_and_reach_the_training_folder(ingest, tmp_path):
    members = {"pets/a.png": png_bytes(seed=1), "pets/b.png": png_bytes(seed=2), "pets/c.png": png_bytes(seed=3),
               "pets/d.png": png_bytes(seed=4), "pets/a.txt": b"a tabby cat",
               "pets/metadata.jsonl": b'{"file_name": "b.png", "text": "' + b"a very long caption " * 20 + b'"}\n'
                                      b'{"file_name": "c.png", "text": ""}\n',
               "pets/notes.txt": b"not a caption of anything"}
    folder, report = ingest([write_zip(tmp_path / "pets.zip", members)])
    assert [image.caption for image in report.accepted] == ["a tabby cat", "a very long caption " * 19 + "a very long caption", None, None]
    assert [(problem.name, problem.reason) for problem in report.caption_problems] == \
        [("pets/metadata.jsonl line 2 (c.png)", "empty caption")]
    assert [skip.name for skip in report.skipped] == ["pets/notes.txt"]
    assert report.truncated_captions() == 1 and report.caption_lengths()[0] == 5
    build_training_folder(folder, report, 16, tmp_path / "train")
    lines = (tmp_path / "train" / "metadata.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines][0] == {"file_name": "00000.png", "text": "a tabby cat"}


def test_a_datasets_folder_goes_through_the_same_checks(manager, tmp_path):
    data = tmp_path / "hub-like"
    files = write_files(data, {f"{i}.png": png_bytes(seed=i) for i in range(4)})
    (data / "metadata.jsonl").write_text("".join(json.dumps({"file_name": path.name, "text": f"picture {i}"}) + "\n"
                                                 for i, path in enumerate(files)))
    upload_id, report = manager.uploads.inspect_dataset(str(data), "train", "image", "text")
    assert len(report.accepted) == 4 and [image.caption for image in report.accepted][:2] == ["picture 0", "picture 1"]
    assert manager.uploads.get(upload_id)[1] == report
    with pytest.raises(ValueError, match="no caption column 'caption'"):
        manager.uploads.inspect_dataset(str(data), "train", "image", "caption")
    manager.uploads.settings = replace(manager.uploads.settings, offline=True)
    with pytest.raises(ValueError, match="runs offline .* cannot be downloaded"):
        manager.uploads.inspect_dataset("huggan/smithsonian_butterflies_subset")
