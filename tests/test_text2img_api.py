"""The Text to image tab through gradio_client, on the running app with the tiny Stable Diffusion model."""

import re
import time

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from gradio_client.utils import Status
from PIL import Image

from diffusion_app.core.metadata import parse_parameters, read_parameters
from conftest import TINY_SD_MODEL, cancel_and_wait, wait_for_first_output

HUB_SD = "stable-diffusion-v1-5/stable-diffusion-v1-5"
STOPPED = re.compile(rf"stopped {TINY_SD_MODEL} after (\d+) of 150 steps")


@pytest.fixture(scope="module")
def client(server_url):
    return Client(server_url, verbose=False)


def text2img(model=TINY_SD_MODEL, prompt="a lighthouse at dawn", negative="fog", sampler="Euler a", steps=4, cfg=7.5,
             width=64, height=64, count=1, preview_every=2, seed=5, random_seed=False):
    return (model, prompt, negative, sampler, steps, cfg, width, height, count, preview_every, seed, random_seed)


def gallery_images(gallery):
    return [Image.open(item["image"]) for item in gallery]


def test_documented_endpoints(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/generate_text2img", "/read_parameters"} <= set(endpoints)


def test_generates_pngs_with_their_parameters_and_same_seed_same_images(client):
    gallery, report = client.predict(*text2img(count=2, width=72), api_name="/generate_text2img")
    images = gallery_images(gallery)
    assert [(image.format, image.size) for image in images] == [("PNG", (72, 64))] * 2
    params = [parse_parameters(read_parameters(image)) for image in images]
    assert [p["Seed"] for p in params] == ["5", "6"]
    assert params[0] | {"Seed": None} == {"Prompt": "a lighthouse at dawn", "Negative prompt": "fog", "Steps": "4",
                                          "Sampler": "Euler a", "CFG scale": "7.5", "Seed": None, "Size": "72x64",
                                          "Model": TINY_SD_MODEL}
    assert report.startswith("Seed 5 ") and "4 Euler a steps" in report
    again, _ = client.predict(*text2img(count=2, width=72), api_name="/generate_text2img")
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(images, gallery_images(again)))


def test_random_seed_is_reported(client):
    gallery, report = client.predict(*text2img(random_seed=True), api_name="/generate_text2img")
    seed = parse_parameters(read_parameters(gallery_images(gallery)[0]))["Seed"]
    assert report.startswith(f"Seed {seed} ")


def test_previews_arrive_while_denoising(client):
    job = client.submit(*text2img(steps=7, preview_every=3, count=2, height=128), api_name="/generate_text2img")
    job.result(timeout=120)
    outputs = job.outputs()
    assert [report.split(" ·")[0] for _, report in outputs[:-1]] == [f"Step {i}/7" for i in range(1, 8)]
    previews = [gallery for gallery, report in outputs[:-1] if report.startswith(("Step 3/", "Step 6/"))]
    assert [len(gallery) for gallery in previews] == [2, 2]
    assert gallery_images(previews[0])[0].size == (8, 16)  # latent size: no VAE decode for previews
    assert gallery_images(outputs[-1][0])[0].size == (64, 128)


def test_over_long_prompt_is_encoded_in_chunks_or_cut_when_asked(client):
    """The inputs after the seed: no LoRA, no tiny decoder, then "Cut long prompts at the context"."""
    _, report = client.predict(*text2img(prompt="cat " * 80 + "zebra"), "", 1.0, "", False, False,
                               api_name="/generate_text2img")
    assert "**Prompt** is longer than the text encoder's 77 tokens: encoded in 2 chunks." in report
    _, report = client.predict(*text2img(prompt="cat " * 80 + "zebra"), "", 1.0, "", False, True,
                               api_name="/generate_text2img")
    assert "Prompt truncated" in report and "zebra" in report


def test_read_parameters_fills_the_controls(client, tmp_path):
    gallery, _ = client.predict(*text2img(prompt="a (fox:1.3), sitting: on [snow]", negative="(blurry:1.2)",
                                          sampler="UniPC", steps=3, cfg=5, width=80, height=64, seed=42),
                                "", 1.0, "", False, True, api_name="/generate_text2img")
    values = client.predict(handle_file(gallery[0]["image"]), api_name="/read_parameters")
    (model, prompt, negative, sampler, steps, cfg, width, height, seed, random_seed, message,
     lora, _, _, tiny_final, truncate) = values
    assert (model, prompt, negative, sampler, steps, cfg, width, height, seed, random_seed, lora, tiny_final,
            truncate) == (TINY_SD_MODEL, "a (fox:1.3), sitting: on [snow]", "(blurry:1.2)", "UniPC", 3, 5, 80, 64, 42,
                          False, "", False, True)
    assert message.startswith("Settings read from the image")


def test_read_parameters_of_an_image_without_them(client, tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    with pytest.raises(AppError, match="no generation parameters"):
        client.predict(handle_file(str(tmp_path / "plain.png")), api_name="/read_parameters")


@pytest.mark.parametrize("args, message", [
    (text2img(width=100), "Width must be a multiple of 8"),
    (text2img(height=4096), "greater than maximum value 2048"),
    (text2img(sampler="Heun"), "Heun is not in the list of choices"),
    (text2img(cfg=0.5), "less than minimum value 1"),
    (text2img(model="no such model"), "Unknown model 'no such model'"),
    (text2img(model=HUB_SD), f"Model '{HUB_SD}' is not available.*--add-model"),
])
def test_bad_input_gets_a_clear_error_and_the_server_keeps_serving(client, args, message):
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name="/generate_text2img")
    gallery, _ = client.predict(*text2img(steps=2), api_name="/generate_text2img")
    assert len(gallery) == 1


def test_stop_cancels_a_run_ends_its_pipeline_call_and_the_next_request_is_served(client, tmp_path_factory):
    job = client.submit(*text2img(steps=150, width=256, height=256), api_name="/generate_text2img")
    outputs = wait_for_first_output(job)
    assert outputs and outputs[-1][1].startswith("Step "), "no progress report arrived"
    cancel_and_wait(job)
    assert job.status().code == Status.CANCELLED
    server_log = next(tmp_path_factory.getbasetemp().glob("logs*/app.log"))
    deadline = time.monotonic() + 60
    while not (stopped := STOPPED.search(server_log.read_text())) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stopped and int(stopped[1]) < 150, "the pipeline call went on after Stop"
    gallery, report = client.predict(*text2img(steps=2), api_name="/generate_text2img")
    assert len(gallery) == 1 and "2 Euler a steps" in report
