"""Prompts as AUTOMATIC1111 writes them: weights read by its rules and encoded by compel, long prompts encoded in
chunks (or cut, when asked), and both carried through the PNG parameters."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from sd_parsers import ParserManager

from conftest import TINY_SD_MODEL
from diffusion_app.core.metadata import save_png
from diffusion_app.core.prompt_weights import Piece, attention_pieces
from diffusion_app.service.generation.step_by_step import StepByStepRun
from diffusion_app.service.generation.text2img import TextToImageRequest, generate
from diffusion_app.service.generation.text2img_parameters import request_fields, request_fields_from_png
from diffusion_app.service.studio import Studio
from diffusion_app.settings import Settings

# 124 tokens: past the 75 CLIP reads between its start and end tokens, so "zebra giraffe" is in a second chunk.
LONG_PROMPT = "a red fox, " + ", ".join(["in the snow"] * 29) + ", zebra giraffe"
OTHER_ENDING = LONG_PROMPT.replace("zebra giraffe", "purple castle")


@pytest.fixture(scope="module")
def studio(models_dir, tmp_path_factory):
    return Studio(Settings(models_dir=models_dir, data_dir=tmp_path_factory.mktemp("data"), offline=True))


def request(**changes) -> TextToImageRequest:
    fields = dict(model=TINY_SD_MODEL, prompt="a red fox in the snow", steps=3, width=64, height=64, seed=3,
                  scheduler="Euler", guidance_scale=7.5)
    return TextToImageRequest(**{**fields, **changes})


def image_of(studio, **changes) -> np.ndarray:
    return np.asarray(generate(studio, request(**changes))[0][0]).astype(int)


@pytest.mark.parametrize("prompt, pieces", [
    ("(red:1.6) heart", [("red", 1.6), (" heart", 1.0)]),
    ("a (b) [c] d", [("a ", 1.0), ("b", 1.1), (" ", 1.0), ("c", 0.909091), (" d", 1.0)]),
    ("((x)) y", [("x", 1.21), (" y", 1.0)]),
    ("((x:1.5)) y", [("x", 1.65), (" y", 1.0)]),
    ("[(x)]", [("x", 1.0)]),
    (r"\(literal\) \[too\] (open", [("(literal) [too] ", 1.0), ("open", 1.1)]),
    ("time: 5, (a:b)", [("time: 5, ", 1.0), ("a:b", 1.1)]),
    ("a ) b ]", [("a ) b ]", 1.0)]),
    ("(red:1) heart", [("red heart", 1.0)]),
])
def test_prompts_are_read_by_automatic1111s_rules(prompt, pieces):
    assert attention_pieces(prompt) == [Piece(text, weight) for text, weight in pieces]


def test_a_weight_of_one_is_the_plain_prompt_and_other_weights_change_the_image(studio):
    """(The tiny random model draws much the same for any prompt: a change shows, but is small.)"""
    plain = image_of(studio, prompt="a red fox in the snow")
    assert np.array_equal(image_of(studio, prompt="a (red:1) fox in the snow"), plain)
    assert np.array_equal(image_of(studio, prompt="a [(red)] fox in the snow"), plain)
    assert np.abs(image_of(studio, prompt="a (red:1.6) fox in the snow") - plain).max() > 0
    assert np.abs(image_of(studio, prompt="a (red:0.4) fox in the snow") - plain).max() > 0
    weighted_negative = image_of(studio, negative_prompt="(blurry:1.5)")
    assert np.abs(weighted_negative - image_of(studio, negative_prompt="blurry")).max() > 0


def test_a_long_prompts_last_words_count_unless_truncated(studio):
    image, run = generate(studio, request(prompt=LONG_PROMPT))
    assert run.chunks == {"Prompt": 2} and run.truncated == {}
    assert np.abs(np.asarray(image[0]).astype(int) - image_of(studio, prompt=OTHER_ENDING)).max() > 0
    truncated, cut_run = generate(studio, request(prompt=LONG_PROMPT, truncate_long_prompts=True))
    assert cut_run.truncated["Prompt"].endswith(", zebra giraffe") and cut_run.chunks == {}
    assert np.array_equal(np.asarray(truncated[0]).astype(int),
                          image_of(studio, prompt=OTHER_ENDING, truncate_long_prompts=True))
    # a long negative prompt is padded to the prompt's chunks, or the prompt to the negative's
    assert generate(studio, request(negative_prompt=LONG_PROMPT))[1].chunks == {"Negative prompt": 2}


def test_weights_and_the_truncation_choice_round_trip_through_the_png_as_other_uis_read_it(studio, tmp_path):
    made = request(prompt="a (red:1.6) fox, [snow]", negative_prompt="(blurry:1.2)", truncate_long_prompts=True)
    image = generate(studio, made)[0][0]
    path = save_png(image, tmp_path / "weighted.png")
    read = ParserManager().parse(path)  # sd-parsers, as other tools read AUTOMATIC1111's format
    assert read.generator.value == "AUTOMATIC1111"
    assert read.prompts[0].value == "a (red:1.6) fox, [snow]"
    assert read.negative_prompts[0].value == "(blurry:1.2)"
    fields, notes = request_fields_from_png(path)
    assert notes == [] and fields["truncate_long_prompts"] is True
    remade = generate(studio, TextToImageRequest(**{**fields, "model": TINY_SD_MODEL}))[0][0]
    assert np.array_equal(np.asarray(remade), np.asarray(Image.open(path).convert("RGB")))


def test_weights_written_by_automatic1111_read_back_as_written():
    text = ("masterpiece, (red:1.3) apple, [background], \\(1990\\)\nNegative prompt: (worst quality:1.4)\n"
            "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 5, Size: 512x512, Model: v1-5")
    fields, _ = request_fields(text)
    assert fields["prompt"] == "masterpiece, (red:1.3) apple, [background], \\(1990\\)"
    assert fields["negative_prompt"] == "(worst quality:1.4)" and "truncate_long_prompts" not in fields
    assert attention_pieces(fields["prompt"])[1] == Piece("red", 1.3)


def test_step_by_step_encodes_weighted_and_long_prompts_as_text_to_image_does(studio):
    for prompt in ("a (red:1.6) fox in [snow]", LONG_PROMPT):
        shown = StepByStepRun(studio, request(prompt=prompt, negative_prompt="(dark:1.2)"))
        for _ in shown:
            pass
        assert np.array_equal(np.asarray(shown.images[0]).astype(int),
                              image_of(studio, prompt=prompt, negative_prompt="(dark:1.2)"))
