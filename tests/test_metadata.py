from PIL import Image

from diffusion_app.core.metadata import (
    format_parameters,
    parse_parameters,
    read_parameters,
    save_png,
    with_parameters,
)


def test_unconditional_parameters_are_one_settings_line():
    text = format_parameters({"Steps": 50, "Sampler": "DDIM", "Eta": None, "Seed": 3, "Model": "openmoji"})
    assert text == "Steps: 50, Sampler: DDIM, Seed: 3, Model: openmoji"
    assert parse_parameters(text) == {"Steps": "50", "Sampler": "DDIM", "Seed": "3", "Model": "openmoji"}


def test_prompt_negative_prompt_and_awkward_values_round_trip():
    settings = {"Steps": 20, "CFG scale": 7.5, "Seed": 1, "Size": "512x512", "Model": "a/b, c: \"d\""}
    prompt = "a cat, sitting: on a mat\nsecond line"
    text = format_parameters(settings, prompt=prompt, negative_prompt="blurry, low quality")
    assert text.startswith(prompt + "\nNegative prompt: blurry, low quality\n")
    parsed = parse_parameters(text)
    assert parsed["Prompt"] == prompt
    assert parsed["Negative prompt"] == "blurry, low quality"
    assert parsed["Model"] == 'a/b, c: "d"'
    assert parsed["CFG scale"] == "7.5"


def test_reads_the_text_other_diffusion_uis_write():
    text = ("masterpiece, a red fox\nNegative prompt: ugly\n"
            "Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 6, Seed: 123, Size: 512x768, Model hash: abc123")
    parsed = parse_parameters(text)
    assert parsed["Sampler"] == "DPM++ 2M Karras"
    assert parsed["Size"] == "512x768" and parsed["Model hash"] == "abc123"


def test_png_text_chunk_round_trip(tmp_path):
    image = with_parameters(Image.new("RGB", (4, 4), "red"), "Steps: 3, Seed: 9")
    path = save_png(image, tmp_path / "x.png")
    assert read_parameters(path) == "Steps: 3, Seed: 9"
    assert read_parameters(Image.new("RGB", (2, 2))) is None
