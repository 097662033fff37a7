"""Tiny autoencoders (TAESD): distilled by the trainer (mode tiny-vae), listed for their base model, decoding the
Text to image tab's previews at every step and, when asked, its final images."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, AutoencoderTiny
from PIL import Image

from conftest import TINY_LCM_LORA, TINY_MODEL, TINY_SD_MODEL, TINY_TAESD
from diffusion_app.catalog import TINY_AUTOENCODER
from diffusion_app.service.generation.image_to_image import image_to_image_run
from diffusion_app.service.generation.text2img import TextToImageRequest, TextToImageRun, generate
from diffusion_app.service.generation.text2img_parameters import request_fields
from diffusion_app.service.models.tiny_autoencoders import tiny_autoencoder, tiny_decode
from diffusion_app.training.config import TrainingConfig
from diffusion_app.training.modes.tiny_vae import TinyVAEMode
from diffusion_app.ui.few_step import fast_preset
from text_training_data import squares_folder

SIDE = 64


def request(**fields) -> TextToImageRequest:
    return TextToImageRequest(**{"model": TINY_SD_MODEL, "prompt": "a red square", "steps": 4, "width": SIDE,
                                 "height": SIDE, "seed": 5, **fields})


def test_the_trained_tiny_autoencoder_is_listed_for_its_base_and_swaps_in_for_its_vae(studio, models_dir):
    entry = studio.catalog.get(TINY_TAESD)
    base = studio.catalog.get(TINY_SD_MODEL).source
    assert entry.kind == TINY_AUTOENCODER and entry.base_model == base and entry.available_offline()
    assert studio.catalog.tiny_autoencoders(base) == [entry]
    tiny = AutoencoderTiny.from_pretrained(models_dir / TINY_TAESD)
    vae = AutoencoderKL.from_pretrained(models_dir / TINY_SD_MODEL, subfolder="vae")
    assert tiny.config.scaling_factor == 1.0 and tiny.config.latent_channels == vae.config.latent_channels
    latents = torch.zeros(1, vae.config.latent_channels, SIDE // 8, SIDE // 8)
    assert tiny.decode(latents).sample.shape == vae.decode(latents).sample.shape  # the same 8x upscaling


def test_distillation_brings_the_student_closer_to_the_vae(models_dir, tmp_path):
    """A few optimiser steps of the mode's loss: the student's decode and encode move toward the teacher's."""
    config = TrainingConfig(mode="tiny-vae", train_data_dir=str(squares_folder(tmp_path / "data", count=4, size=32)),
                            output_dir=str(tmp_path / "run"), pretrained_model=str(models_dir / TINY_SD_MODEL),
                            resolution=32, random_flip=False, tiny_vae_channels=8)
    mode = TinyVAEMode(config, accelerator=type("CPU", (), {"device": torch.device("cpu")})())
    batch = {"pixel_values": torch.stack([mode.dataset[i]["pixel_values"] for i in range(4)])}
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(mode.trainable_parameters(), lr=3e-3)
    first = mode.loss(mode.model, batch).item()
    for _ in range(20):
        optimizer.zero_grad()
        mode.loss(mode.model, batch).backward()
        optimizer.step()
    assert mode.loss(mode.model, batch).item() < 0.5 * first


def test_previews_come_from_the_tiny_decoder_at_every_step(studio):
    run = TextToImageRun(studio, request(tiny_autoencoder=TINY_TAESD), preview_every=1)
    previews = [step.preview for step in run]
    assert all(preview[0].size == (SIDE, SIDE) for preview in previews[:-1]) and previews[-1] is None
    plain = TextToImageRun(studio, request(), preview_every=1)
    assert {step.preview[0].size for step in plain if step.preview} == {(SIDE // 8, SIDE // 8)}  # the linear map's


def test_the_final_images_are_the_tiny_decoders_decode_of_the_final_latents(studio):
    images, run = generate(studio, request(tiny_autoencoder=TINY_TAESD, tiny_final_decode=True))
    reference = TextToImageRun(studio, request())
    latents = reference.pipeline(**reference.call_arguments(), output_type="latent").images
    expected = np.asarray(tiny_decode(tiny_autoencoder(studio, TINY_TAESD), latents)[0], dtype=np.int16)
    assert np.abs(np.asarray(images[0], dtype=np.int16) - expected).max() <= 1
    with_vae = np.asarray(generate(studio, request())[0][0], dtype=np.int16)
    assert np.abs(with_vae - expected).mean() > 1  # the VAE draws otherwise: the tiny decoder did decode
    assert isinstance(studio.pipeline(TINY_SD_MODEL, "text-to-image").vae, AutoencoderKL)  # the cached one keeps its own
    assert f"VAE: {TINY_TAESD}" in images[0].info["parameters"]


def test_the_png_names_the_tiny_decoder_that_decoded_it_and_reads_back(studio):
    images, _ = generate(studio, request(tiny_autoencoder=TINY_TAESD, tiny_final_decode=True))
    fields, notes = request_fields(images[0].info["parameters"])
    assert (fields["tiny_autoencoder"], fields["tiny_final_decode"], notes) == (TINY_TAESD, True, [])
    previews_only = generate(studio, request(tiny_autoencoder=TINY_TAESD))[0][0]
    assert "VAE" not in previews_only.info["parameters"]  # the VAE decoded it


@pytest.mark.parametrize("fields, message", [
    ({"tiny_autoencoder": TINY_LCM_LORA}, "is a lora model, not a tiny autoencoder"),
    ({"tiny_final_decode": True}, "Choose a tiny autoencoder"),
    ({"tiny_autoencoder": TINY_TAESD, "tiny_final_decode": "yes"}, "must be true or false"),
])
def test_a_tiny_decoder_request_that_cannot_work_gets_a_message(studio, fields, message):
    with pytest.raises(ValueError, match=message):
        TextToImageRun(studio, request(**fields))


def test_a_tiny_decoder_made_for_another_model_is_refused(studio, models_dir, tmp_path):
    shutil.copytree(models_dir / TINY_SD_MODEL, tmp_path / "another-sd")
    other = studio.catalog.find_or_add(str(tmp_path / "another-sd"), "text-to-image").name
    with pytest.raises(ValueError, match="decodes the latents of .*; choose that model"):
        TextToImageRun(studio, request(model=other, tiny_autoencoder=TINY_TAESD))


def test_fast_also_picks_the_models_tiny_decoder_for_previews_and_the_final_images(studio):
    preset = fast_preset(studio, TINY_SD_MODEL)
    assert preset[:5] == [TINY_LCM_LORA, "LCM", 4, 1.0, 1.0] and preset[6:] == [TINY_TAESD, True, 1]
    assert f"tiny decoder {TINY_TAESD}" in preset[5]


def test_image_to_image_takes_the_lcm_lora_and_previews_every_step_through_the_tiny_decoder(studio):
    picture = Image.new("RGB", (SIDE, SIDE), "red")
    run = image_to_image_run(studio, request(scheduler="LCM", guidance_scale=1.0, steps=8, lora=TINY_LCM_LORA,
                                             tiny_autoencoder=TINY_TAESD, tiny_final_decode=True), picture, 0.5,
                             preview_every=1)
    previews = [step.preview for step in run]
    assert len(previews) == 4 and all(preview[0].size == (SIDE, SIDE) for preview in previews[:-1])
    parameters = run.images[0].info["parameters"]
    assert "Denoising strength: 0.5" in parameters and f"LoRA: {TINY_LCM_LORA}" in parameters
    assert f"VAE: {TINY_TAESD}" in parameters


def test_fast_on_a_pixel_model_says_it_needs_a_text_to_image_model(studio):
    assert "Fast needs a text-to-image model" in fast_preset(studio, TINY_MODEL)[5]
