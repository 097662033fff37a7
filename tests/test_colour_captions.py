"""emoji-t2i's colour captions: the dominant-colour rule, and the training folder it writes."""

import json

from PIL import Image, ImageDraw

from diffusion_app.training.colour_captions import add_colour_captions, dominant_colour


def emoji_like(fill, outline=(20, 20, 20), size=64) -> Image.Image:
    """A filled, outlined disc on white, as the rendered emoji are."""
    image = Image.new("RGB", (size, size), "white")
    ImageDraw.Draw(image).ellipse((8, 8, size - 8, size - 8), fill=fill, outline=outline, width=3)
    return image


def test_dominant_colour_ignores_background_and_outline():
    assert dominant_colour(emoji_like((220, 30, 40))) == "red"
    assert dominant_colour(emoji_like((250, 200, 40))) == "yellow"
    assert dominant_colour(emoji_like((40, 90, 220))) == "blue"
    assert dominant_colour(emoji_like((130, 60, 200))) == "purple"


def test_dominant_colour_is_the_largest_area():
    image = emoji_like((60, 180, 60))
    ImageDraw.Draw(image).rectangle((28, 28, 36, 36), fill=(220, 30, 40))  # a small red patch on a green disc
    assert dominant_colour(image) == "green"


def test_no_dominant_colour_for_white_grey_or_hues_between_the_words():
    assert dominant_colour(Image.new("RGB", (64, 64), "white")) is None
    assert dominant_colour(emoji_like((128, 128, 128))) is None
    assert dominant_colour(emoji_like((240, 100, 200))) is None  # pink: no colour word of its own


def test_colour_captioned_copies_only_for_names_without_a_colour(tmp_path):
    source = tmp_path / "train"
    source.mkdir()
    rows = [("1F436.png", "dog face", (200, 130, 60)), ("2764.png", "red heart", (220, 30, 40)),
            ("1F469-1F3FB.png", "woman light skin tone", (250, 220, 180)), ("1F3F3.png", "white flag", (255, 255, 255)),
            ("1F34F.png", "green apple", (60, 180, 60)), ("1F499.png", "blue heart", (40, 90, 220)),
            ("1F438.png", "frog", (60, 180, 60))]
    for name, _, fill in rows:
        emoji_like(fill).save(source / name)
    (source / "metadata.jsonl").write_text("".join(json.dumps({"file_name": name, "text": text, "aliases": []}) + "\n"
                                                   for name, text, _ in rows))
    (source / "ATTRIBUTION.txt").write_text("OpenMoji, CC BY-SA 4.0")

    out = add_colour_captions(source, tmp_path / "coloured")

    written = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    assert [row["text"] for row in written] == ["dog face", "orange dog face", "red heart", "woman light skin tone",
                                                "white flag", "green apple", "blue heart", "frog", "green frog"]
    for row in written:
        assert (out / row["file_name"]).is_file()
    assert written[1]["file_name"] == "1F436-orange.png"
    assert (out / "1F436-orange.png").read_bytes() == (source / "1F436.png").read_bytes()
    assert (out / "ATTRIBUTION.txt").read_text() == "OpenMoji, CC BY-SA 4.0"
    assert sorted(path.name for path in source.iterdir()) == sorted([*(name for name, _, _ in rows), "metadata.jsonl",
                                                                     "ATTRIBUTION.txt"])  # the source is untouched
