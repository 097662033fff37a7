"""Inpainting: outside the mask the output is the input (exactly: pixel models by their last step, Stable
Diffusion by the overlay), inside it is redrawn; an all-white mask samples from scratch; bad canvases get a
message; a 9-channel inpainting UNet works as an ordinary one does."""

from __future__ import annotations

import numpy as np
import pytest
from diffusers import StableDiffusionPipeline, UNet2DConditionModel
from gradio_client import Client, handle_file
from PIL import Image, ImageDraw

from conftest import TINY_MODEL, TINY_SD_MODEL
from diffusion_app.catalog import TEXT_TO_IMAGE
from diffusion_app.service.generation.inpaint_canvas import MAX_CANVAS_SIDE, Outpaint, checked_canvas
from diffusion_app.service.generation.inpainting import REPAINT, REPLACE, InpaintRun, PixelInpaintRun, inpainting_run
from diffusion_app.service.generation.sampling import SamplingRequest, sample
from diffusion_app.service.generation.text2img import TextToImageRequest, generate


def pixels(images) -> np.ndarray:
    return np.stack([np.asarray(image, dtype=np.float64) for image in images])


def noise_picture(width: int, height: int, seed: int = 1) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


def box_mask(size: tuple[int, int], box: tuple[int, int, int, int]) -> Image.Image:
    mask = Image.new("L", size)
    ImageDraw.Draw(mask).rectangle(box, fill=255)
    return mask


def finished(run):
    for _ in run:
        pass
    return run


@pytest.mark.parametrize("method", [REPAINT, REPLACE])
def test_pixel_inpainting_keeps_the_known_part_exactly_and_redraws_the_rest(studio, method):
    picture, mask = checked_canvas(noise_picture(16, 16), box_mask((16, 16), (4, 4, 11, 11)))
    run = finished(inpainting_run(studio, SamplingRequest(TINY_MODEL, num_images=2, steps=6, seed=3,
                                                          scheduler="DDPM"),
                                  picture, mask, method=method, jump_length=2, resampling=2))
    redrawn = np.asarray(mask) == 255
    for image in pixels(run.images()):
        assert np.array_equal(image[~redrawn], np.asarray(picture, dtype=np.float64)[~redrawn])
        assert np.abs(image[redrawn] - np.asarray(picture, dtype=np.float64)[redrawn]).mean() > 10
    parameters = run.images()[0].info["parameters"]
    assert f"Inpainting: {method}" in parameters and "Mask: 25% in x 4-12 y 4-12" in parameters
    assert ("Jump length: 2, Resampling: 2" in parameters) == (method == REPAINT)


def test_repaint_goes_back_up_the_chain_and_each_image_is_its_seeds_alone(studio):
    picture, mask = checked_canvas(noise_picture(16, 16), box_mask((16, 16), (0, 0, 7, 15)))
    request = SamplingRequest(TINY_MODEL, num_images=2, steps=6, seed=3, scheduler="DDPM")
    run = PixelInpaintRun(studio, request, picture, mask, REPAINT, jump_length=2, resampling=3)
    timesteps = [step.timestep for step in run]
    assert len(timesteps) > 6 and any(later > earlier for earlier, later in zip(timesteps, timesteps[1:]))
    alone = finished(PixelInpaintRun(studio, SamplingRequest(TINY_MODEL, num_images=1, steps=6, seed=4,
                                                             scheduler="DDPM"),
                                     picture, mask, REPAINT, jump_length=2, resampling=3))
    assert np.array_equal(pixels(run.images())[1], pixels(alone.images())[0])


def test_an_all_white_mask_samples_from_scratch(studio):
    picture, everything = checked_canvas(noise_picture(16, 16), Image.new("L", (16, 16), 255))
    request = SamplingRequest(TINY_MODEL, num_images=2, steps=5, seed=9, scheduler="DDIM")
    inpainted = finished(inpainting_run(studio, request, picture, everything))
    sampled, _ = sample(studio, request)
    assert np.array_equal(pixels(inpainted.images()), pixels(sampled))
    text_request = TextToImageRequest(TINY_SD_MODEL, "a red apple", steps=3, width=64, height=64, seed=2)
    text_inpainted = finished(inpainting_run(studio, text_request, noise_picture(64, 64),
                                             Image.new("L", (64, 64), 255), strength=1.0))
    text_to_image, _ = generate(studio, text_request)
    assert np.array_equal(pixels(text_inpainted.images), pixels(text_to_image))


def test_stable_diffusion_inpainting_keeps_the_input_outside_the_mask(studio):
    picture, mask = checked_canvas(noise_picture(64, 64), box_mask((64, 64), (16, 16, 47, 47)))
    request = TextToImageRequest(TINY_SD_MODEL, "a red apple", steps=3, width=64, height=64, seed=2)
    studio.pipeline(TINY_SD_MODEL, TEXT_TO_IMAGE)  # as Text to image left it
    misses = studio.cache.misses
    run = finished(InpaintRun(studio, request, picture, mask, strength=1.0, mask_blur=0))
    assert studio.cache.misses == misses  # from_pipe on the cached pipeline: nothing loaded again
    redrawn = np.asarray(mask) == 255
    image = pixels(run.images)[0]
    assert np.array_equal(image[~redrawn], np.asarray(picture, dtype=np.float64)[~redrawn])
    assert np.abs(image[redrawn] - np.asarray(picture, dtype=np.float64)[redrawn]).mean() > 10
    parameters = run.images[0].info["parameters"]
    assert "Denoising strength: 1" in parameters and "Mask blur: 0" in parameters and "Mask: 25%" in parameters


def test_only_masked_redraws_the_masks_box_at_full_size_and_keeps_the_rest(studio):
    picture, mask = checked_canvas(noise_picture(64, 64), box_mask((64, 64), (24, 24, 39, 39)))
    request = TextToImageRequest(TINY_SD_MODEL, "a red apple", steps=3, width=64, height=64, seed=2)
    whole = finished(InpaintRun(studio, request, picture, mask, mask_blur=0))
    only_masked = finished(InpaintRun(studio, request, picture, mask, mask_blur=0, mask_padding=4))
    redrawn = np.asarray(mask) == 255
    image = pixels(only_masked.images)[0]
    assert np.array_equal(image[~redrawn], np.asarray(picture, dtype=np.float64)[~redrawn])
    assert np.abs(image[redrawn] - pixels(whole.images)[0][redrawn]).mean() > 10  # drawn at another scale
    assert "Only masked padding: 4" in only_masked.images[0].info["parameters"]
    assert "Only masked" not in whole.images[0].info["parameters"]
    with pytest.raises(ValueError, match="Only masked padding must be a whole number from 0 to 256"):
        InpaintRun(studio, request, picture, mask, mask_padding=300)


def test_outpainting_widens_the_canvas_and_redraws_only_the_border(studio):
    picture, mask = checked_canvas(noise_picture(48, 64), None, Outpaint(right=16))
    assert picture.size == (64, 64)
    assert not np.asarray(mask)[:, :48].any() and np.asarray(mask)[:, 48:].all()
    request = TextToImageRequest(TINY_SD_MODEL, "a red apple", steps=3, width=64, height=64, seed=2)
    run = finished(inpainting_run(studio, request, picture, mask, strength=1.0, mask_blur=0))
    assert np.array_equal(pixels(run.images)[0][:, :48], np.asarray(noise_picture(48, 64), dtype=np.float64))


def test_a_nine_channel_inpainting_unet_works(studio, models_dir, tmp_path):
    """Dedicated inpainting models (stable-diffusion-inpainting's kind) read the mask and masked image as
    five more UNet input channels; diffusers' pipeline feeds them."""
    pipeline = StableDiffusionPipeline.from_pretrained(models_dir / TINY_SD_MODEL)
    pipeline.unet = UNet2DConditionModel.from_config({**pipeline.unet.config, "in_channels": 9})
    pipeline.save_pretrained(tmp_path / "tiny-sd-inpainting")
    picture, mask = checked_canvas(noise_picture(64, 64), box_mask((64, 64), (0, 0, 31, 63)))
    request = TextToImageRequest(str(tmp_path / "tiny-sd-inpainting"), "a red apple", steps=2, width=64, height=64,
                                 seed=2)
    run = finished(InpaintRun(studio, request, picture, mask, strength=1.0, mask_blur=0))
    assert run.pipeline.unet.config.in_channels == 9
    assert np.array_equal(pixels(run.images)[0][:, 32:], np.asarray(picture, dtype=np.float64)[:, 32:])


@pytest.mark.parametrize("image, mask, outpaint, message", [
    (None, None, Outpaint(), "Upload or paste an image"),
    ("not a picture", None, Outpaint(), "must be a picture"),
    (noise_picture(16, 16), None, Outpaint(), "The mask is empty"),
    (noise_picture(16, 16), Image.new("L", (8, 8), 255), Outpaint(), "The mask is 8x8 but the image is 16x16"),
    (noise_picture(16, 16), None, Outpaint(left=-1), "whole number of pixels from 0 to 512"),
    (noise_picture(16, 16), None, Outpaint(up=512, down=512), "at most 1024 pixels"),
    (noise_picture(MAX_CANVAS_SIDE + 8, 16), None, Outpaint(), "sides of at most 1024"),
])
def test_a_canvas_that_cannot_be_inpainted_gets_a_message(image, mask, outpaint, message):
    with pytest.raises(ValueError, match=message):
        checked_canvas(image, mask, outpaint)


def test_a_mask_too_small_for_the_model_gets_a_message(studio):
    picture, mask = checked_canvas(noise_picture(160, 160), box_mask((160, 160), (0, 0, 1, 1)))
    with pytest.raises(ValueError, match="covers no pixel"):
        PixelInpaintRun(studio, SamplingRequest(TINY_MODEL, num_images=1, steps=2), picture, mask)


def test_through_the_api_with_an_uploaded_mask(server_url, tmp_path):
    noise_picture(16, 16).save(tmp_path / "in.png")
    box_mask((16, 16), (0, 0, 7, 15)).save(tmp_path / "mask.png")
    editor = {"background": handle_file(str(tmp_path / "in.png")), "layers": [], "composite": None}
    client = Client(server_url, verbose=False)
    text_options = ("", "", 7.5, 1.0, 4, "Whole picture", 32)  # prompt, negative, CFG, strength, blur, area, padding
    canvas, gallery, report = client.predict(
        TINY_MODEL, editor, handle_file(str(tmp_path / "mask.png")), REPLACE, 2, 2, *text_options, 0, 0, 0, 0,
        "DDIM", 4, 2, 5, False, api_name="/generate_inpaint")
    assert len(canvas) == 2 and len(gallery) == 2 and f"Seed 5 · {REPLACE}: 4 model steps" in report
    with pytest.raises(Exception, match="The mask is empty"):  # nothing painted, no mask: a message, and it serves on
        client.predict(TINY_MODEL, editor, None, REPLACE, 2, 2, *text_options, 0, 0, 0, 0, "DDIM", 4, 1, 5, False,
                       api_name="/generate_inpaint")
    assert client.predict(TINY_MODEL, editor, handle_file(str(tmp_path / "mask.png")), REPAINT, 2, 2, *text_options,
                          0, 0, 0, 0, "DDPM", 4, 1, 5, False, api_name="/generate_inpaint")[1]
    with pytest.raises(Exception, match="'Everywhere'.*not in the list of choices"):
        client.predict(TINY_SD_MODEL, editor, handle_file(str(tmp_path / "mask.png")), REPAINT, 2, 2, "", "", 7.5, 1.0,
                       4, "Everywhere", 32, 0, 0, 0, 0, "Euler", 2, 1, 5, False, api_name="/generate_inpaint")


def test_painting_wins_over_the_uploaded_mask_which_serves_when_nothing_is_painted():
    from diffusion_app.ui.inpaint import picture_and_mask

    picture, uploaded = noise_picture(16, 16), box_mask((16, 16), (0, 0, 7, 15))
    stroke = Image.new("RGBA", (16, 16))
    ImageDraw.Draw(stroke).rectangle((0, 6, 15, 9), fill=(255, 255, 255, 255))
    _, mask = picture_and_mask({"background": picture, "layers": [stroke]}, uploaded)
    assert mask.getbbox() == (0, 6, 16, 10)
    _, mask = picture_and_mask({"background": picture, "layers": [Image.new("RGBA", (16, 16))]}, uploaded)
    assert mask is uploaded
