"""emoji-t2i's colour captions: the dominant-colour rule, and the training folder it writes."""

import json

from PIL import Image, ImageDraw

from diffusion_app.training.colour_captions import HUE_NAMES, add_colour_captions, dominant_colour, recolour


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


def emoji_folder(folder, rows):
    """An imagefolder of emoji_like images with their captions, as the emoji caption folder writes it."""
    folder.mkdir()
    for name, _, fill in rows:
        emoji_like(fill).save(folder / name)
    (folder / "metadata.jsonl").write_text("".join(json.dumps({"file_name": name, "text": text, "aliases": []}) + "\n"
                                                   for name, text, _ in rows))
    return folder


def test_recolour_turns_the_dominant_colour_and_keeps_white_and_outlines():
    red = emoji_like((220, 30, 40))
    for target in HUE_NAMES:
        turned = recolour(red, "red", target)
        assert dominant_colour(turned) == target
        assert turned.getpixel((1, 1)) == (255, 255, 255)
        assert turned.getpixel((32, 9)) == red.getpixel((32, 9)) == (20, 20, 20)  # the outline


def test_colour_captioned_copies_only_for_names_without_a_colour(tmp_path):
    rows = [("1F436.png", "dog face", (200, 130, 60)), ("2764.png", "red heart", (220, 30, 40)),
            ("1F469-1F3FB.png", "woman light skin tone", (250, 220, 180)), ("1F3F3.png", "white flag", (255, 255, 255)),
            ("1F34F.png", "green apple", (60, 180, 60)), ("1F499.png", "blue heart", (40, 90, 220)),
            ("1F438.png", "frog", (60, 180, 60))]
    source = emoji_folder(tmp_path / "train", rows)
    (source / "ATTRIBUTION.txt").write_text("OpenMoji, CC BY-SA 4.0")

    out = add_colour_captions(source, tmp_path / "coloured", recoloured_copies=0)

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


def test_recoloured_copies_balance_the_colour_words(tmp_path):
    rows = [("2764.png", "red heart", (220, 30, 40)), ("1F600.png", "grinning face", (250, 200, 40)),
            ("1F436.png", "dog face", (250, 200, 40)), ("1F49C.png", "blue heart", (220, 30, 40)),
            ("1F469-1F3FB.png", "woman light skin tone", (250, 220, 180)), ("1F90E.png", "brown heart", (150, 90, 40))]
    source = emoji_folder(tmp_path / "train", rows)

    out = add_colour_captions(source, tmp_path / "coloured", recoloured_copies=2)

    written = [json.loads(line) for line in (out / "metadata.jsonl").read_text().splitlines()]
    texts = [row["text"] for row in written]
    assert texts == ["red heart", "orange heart", "yellow heart",  # the colour word replaced
                     "grinning face", "yellow grinning face", "red grinning face", "green grinning face",
                     "dog face", "yellow dog face", "blue dog face", "purple dog face",  # the rarest colours
                     "blue heart",  # its name contradicts its red pixels: no copies
                     "woman light skin tone", "brown heart"]  # skin tones and brown: no copies
    for row in written:
        if row["file_name"] not in {name for name, _, _ in rows}:  # a copy: its colour word is its dominant colour
            assert dominant_colour(Image.open(out / row["file_name"])) == row["text"].split()[0]
