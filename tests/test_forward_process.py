"""The Forward process tab: x_t equals the scheduler's add_noise for the same noise, with a model's schedule
and size or a named schedule; the curves; through the API."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from diffusion_app.core.denoising import to_pil
from diffusion_app.service.generation.forward_process import ForwardRequest, forward_process, prepare


@pytest.fixture
def picture() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8))


def test_x_t_is_add_noise_of_the_same_noise(studio, picture):
    timesteps = (0, 10, 500, 999)
    images, curves = forward_process(studio, picture, ForwardRequest("squaredcos_cap_v2", timesteps, seed=3))
    scheduler = DDPMScheduler(beta_schedule="squaredcos_cap_v2")
    clean = prepare(picture, None, None)
    noise = torch.randn(clean.shape, generator=torch.Generator().manual_seed(3))
    for image, t in zip(images, timesteps):
        expected = to_pil(scheduler.add_noise(clean, noise, torch.tensor([t])))[0]
        assert np.array_equal(np.asarray(image), np.asarray(expected))
        assert f"t={t}" in image.info["parameters"]
    assert images[0].size == (96, 64)  # the shorter side at 64 px
    alpha_bar = curves["alpha_bar"]
    assert len(alpha_bar) == 1000 and np.all(np.diff(alpha_bar) < 0)
    assert np.allclose(curves["sqrt(alpha_bar)"] ** 2 + curves["sqrt(1 - alpha_bar)"] ** 2, 1)


def test_a_models_schedule_sets_its_size_and_channels(studio, picture):
    images, curves = forward_process(studio, picture, ForwardRequest("tiny-digits", (0, 999)))
    assert images[0].size == (8, 8) and images[0].mode == "L"
    assert np.allclose(curves["alpha_bar"], DDPMScheduler().alphas_cumprod.numpy())


@pytest.mark.parametrize("request_, message", [
    (ForwardRequest("linear", (1000,)), "Timestep must be a whole number from 0 to 999"),
    (ForwardRequest("linear", ()), "Give 1 to 16 timesteps"),
    (ForwardRequest("no-such", (1,)), "Unknown model 'no-such'"),
])
def test_bad_requests_are_refused(studio, picture, request_, message):
    with pytest.raises(ValueError, match=message):
        forward_process(studio, picture, request_)


def test_through_the_api(server_url, tmp_path, picture):
    client = Client(server_url, verbose=False)
    picture.save(tmp_path / "in.png")
    gallery, signal, snr = client.predict(handle_file(str(tmp_path / "in.png")), "linear", "0, 500, 999", 1,
                                          api_name="/forward_process")
    assert [item["caption"] for item in gallery] == ["t=0", "t=500", "t=999"]
    assert len(snr["data"]) == 1000
    with pytest.raises(AppError, match="Timesteps must be whole numbers"):
        client.predict(handle_file(str(tmp_path / "in.png")), "linear", "0, half", 1, api_name="/forward_process")
