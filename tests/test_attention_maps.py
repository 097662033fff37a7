"""Cross-attention maps per prompt token (DAAM): recording them leaves the image as it was, the tokens the text
encoder never reads or reads as padding are marked as such, and on the bundled emoji-t2i an object word's map at
the finest UNet level covers the drawn emoji far better than a uniform map does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import TINY_SD_MODEL
from diffusion_app.service.generation.attention_maps import AttentionMapRun
from diffusion_app.service.generation.prompt_tokens import prompt_tokens
from diffusion_app.service.generation.text2img import TextToImageRequest, generate
from diffusion_app.service.studio import Studio
from diffusion_app.settings import Settings

BUNDLED = Path(__file__).resolve().parents[1] / "models"


def run_to_end(run: AttentionMapRun) -> AttentionMapRun:
    for _ in run:
        pass
    return run


def test_recording_the_maps_leaves_the_image_unchanged(studio):
    request = TextToImageRequest(TINY_SD_MODEL, "a red apple", steps=4, width=64, height=64, seed=2)
    plain, _ = generate(studio, request)
    run = run_to_end(AttentionMapRun(studio, request, first_step=2, last_step=3))
    assert np.array_equal(np.asarray(plain[0]), np.asarray(run.images[0]))
    assert [map_.token.role for map_ in run.maps][:5] == ["start", "word", "word", "word", "end"]
    heat = run.maps[1].heat(run.levels, (64, 64))
    assert heat.shape == (64, 64) and heat.min() == 0 and heat.max() == 1
    # The UNet has its own processors back: a second plain run draws the same image again.
    assert np.array_equal(np.asarray(generate(studio, request)[0][0]), np.asarray(plain[0]))


def test_tokens_past_the_context_are_cut_and_the_rest_is_padding(studio):
    tokenizer = studio.pipeline(TINY_SD_MODEL, "text-to-image").tokenizer
    tokens = prompt_tokens(tokenizer, "apple " * 100)
    roles = [token.role for token in tokens]
    limit = tokenizer.model_max_length
    assert roles[:limit] == ["start"] + ["word"] * (limit - 2) + ["end"]
    assert roles[limit:] == ["cut"] * (100 - (limit - 2))
    short = [token.role for token in prompt_tokens(tokenizer, "apple")]
    assert short[:3] == ["start", "word", "end"] and set(short[3:]) == {"padding"} and len(short) == limit


def test_a_step_range_outside_the_run_is_refused(studio):
    request = TextToImageRequest(TINY_SD_MODEL, "apple", steps=4, width=64, height=64, seed=0)
    with pytest.raises(ValueError, match="Last step"):
        AttentionMapRun(studio, request, first_step=2, last_step=9)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_object_word_covers_the_emoji_at_the_finest_level(tmp_path, seed):
    studio = Studio(Settings(models_dir=BUNDLED, data_dir=tmp_path, offline=True))
    run = run_to_end(AttentionMapRun(studio, TextToImageRequest("emoji-t2i", "red apple", steps=20, width=64,
                                                                height=64, seed=seed)))
    drawn = np.abs(np.asarray(run.images[0].convert("RGB"), dtype=int) - 255).sum(axis=-1) > 60  # not the white
    apple = next(map_ for map_ in run.maps if map_.token.text == "apple</w>")
    attended = apple.heat(run.levels[:1], (64, 64)) >= 0.5
    iou = (attended & drawn).sum() / (attended | drawn).sum()
    uniform_iou = drawn.mean()  # a uniform map marks every pixel
    assert iou > uniform_iou + 0.15, (iou, uniform_iou)
