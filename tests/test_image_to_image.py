"""Image to image: strength 0 returns the input, strength 1 equals sampling (or text to image) with the same
seed, in between the input is redrawn; Stable Diffusion's pipeline is built from the cached one."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from diffusion_app.service.generation.image_to_image import SDEditRun, image_to_image_run, steps_to_skip
from diffusion_app.service.generation.sampling import SamplingRequest, sample
from diffusion_app.service.generation.text2img import TextToImageRequest, generate
from conftest import TINY_MODEL, TINY_SD_MODEL


def pixels(images) -> np.ndarray:
    return np.stack([np.asarray(image, dtype=np.float64) for image in images])


@pytest.fixture
def picture() -> Image.Image:
    return Image.fromarray(np.random.default_rng(1).integers(0, 256, (16, 16, 3), dtype=np.uint8))


def sdedit(studio, picture, strength, scheduler="DDIM", steps=10) -> SDEditRun:
    run = SDEditRun(studio, SamplingRequest(TINY_MODEL, num_images=2, steps=steps, seed=7, scheduler=scheduler),
                    picture, strength)
    for _ in run:
        pass
    return run


@pytest.mark.parametrize("scheduler", ["DDIM", "DDPM"])
def test_sdedit_strength_zero_is_the_input_and_one_is_sampling(studio, picture, scheduler):
    unchanged = sdedit(studio, picture, 0.0, scheduler)
    assert np.array_equal(pixels(unchanged.images())[0], np.asarray(picture, dtype=np.float64))
    from_noise = sdedit(studio, picture, 1.0, scheduler)
    sampled, _ = sample(studio, SamplingRequest(TINY_MODEL, num_images=2, steps=10, seed=7, scheduler=scheduler))
    assert np.array_equal(pixels(from_noise.images()), pixels(sampled))


def test_sdedit_in_between_starts_from_the_noised_input(studio, picture):
    run = sdedit(studio, picture, 0.5)
    assert steps_to_skip(10, 0.5) == 5
    start = pixels(run.start_images())
    assert 0 < np.abs(start[0] - np.asarray(picture, dtype=np.float64)).mean()  # noised, not the input
    assert "Denoising strength: 0.5" in run.images()[0].info["parameters"]


def test_stable_diffusion_image_to_image_shares_the_cached_models(studio, tmp_path):
    request = TextToImageRequest(TINY_SD_MODEL, "a red apple", steps=4, width=64, height=64, seed=3, num_images=1)
    picture = Image.fromarray(np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    text_to_image, _ = generate(studio, request)
    misses = studio.cache.misses
    runs = {strength: image_to_image_run(studio, request, picture, strength) for strength in (0.0, 0.5, 1.0)}
    for run in runs.values():
        for _ in run:
            pass
    assert studio.cache.misses == misses  # from_pipe on the cached pipeline: nothing loaded again
    assert np.array_equal(pixels(runs[0.0].images)[0], np.asarray(picture, dtype=np.float64))
    assert np.array_equal(pixels(runs[1.0].images), pixels(text_to_image))
    assert runs[0.5].pipeline.unet is studio.cache.peek(TINY_SD_MODEL).unet
    assert "Denoising strength: 0.5" in runs[0.5].images[0].info["parameters"]


def test_through_the_api(server_url, picture, tmp_path):
    picture.save(tmp_path / "in.png")
    start, gallery, report = Client(server_url, verbose=False).predict(
        TINY_MODEL, handle_file(str(tmp_path / "in.png")), 0.5, "", "", 7.5, "DDIM", 10, 2, 3, False,
        api_name="/generate_image_to_image")
    assert len(start) == 2 and len(gallery) == 2 and "strength 0.5: 5 of 10 DDIM steps" in report
