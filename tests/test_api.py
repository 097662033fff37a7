"""The running app, called through gradio_client with the documented API names."""

import numpy as np
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from gradio_client.utils import Status
from PIL import Image

from conftest import cancel_and_wait, wait_for_first_output
from diffusion_app.core.metadata import parse_parameters, read_parameters
from diffusion_app.service.generation.sampling import DEFAULT_CFG_SCALE


@pytest.fixture(scope="module")
def client(server_url):
    return Client(server_url, verbose=False)


def gallery_images(gallery):
    return [Image.open(item["image"]) for item in gallery]


def test_documented_endpoints(client):
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/generate_unconditional", "/generate_ddim", "/generate_colour_guidance",
            "/generate_clip_guidance"} <= set(endpoints)


def test_unconditional_generates_pngs_with_parameters(client):
    gallery, report = client.predict("tiny-ddpm", 2, 10, 42, False, api_name="/generate_unconditional")
    images = gallery_images(gallery)
    assert len(images) == 2 and all(image.format == "PNG" for image in images)
    params = [parse_parameters(read_parameters(image)) for image in images]
    assert [p["Seed"] for p in params] == ["42", "43"]
    assert params[0]["Model"] == "tiny-ddpm" and params[0]["Sampler"] == "DDPM" and params[0]["Steps"] == "10"
    assert "Seed 42" in report
    again, _ = client.predict("tiny-ddpm", 2, 10, 42, False, api_name="/generate_unconditional")
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(images, gallery_images(again)))


def test_random_seed_is_reported(client):
    gallery, report = client.predict("tiny-ddpm", 1, 5, 0, True, api_name="/generate_unconditional")
    seed = parse_parameters(read_parameters(gallery_images(gallery)[0]))["Seed"]
    assert f"Seed {seed}" in report


def test_ddim_streams_final_images_and_timing(client):
    noisy, predicted, report = client.predict("tiny-ddpm", 8, 0.0, 2, 3, 7, False, api_name="/generate_ddim")
    assert len(noisy) == 2 and len(predicted) == 2
    params = parse_parameters(read_parameters(gallery_images(noisy)[0]))
    assert params["Sampler"] == "DDIM" and params["Steps"] == "8" and params["Eta"] == "0.0"
    assert "8 DDIM steps" in report and " s (" in report


def test_ddim_previews_arrive_while_sampling(client):
    job = client.submit("tiny-ddpm", 12, 0.0, 1, 3, 1, False, api_name="/generate_ddim")
    job.result(timeout=120)
    reports = [output[2] for output in job.outputs()]
    assert [r.split(" ·")[0] for r in reports[:-1]] == ["Step 3/12", "Step 6/12", "Step 9/12"]
    assert "12 DDIM steps" in reports[-1]


@pytest.mark.parametrize(
    "api_name, args, message",
    [
        ("/generate_unconditional", ("nope", 1, 5, 0, False), "nope is not in the list of choices"),
        ("/generate_unconditional", ("google/ddpm-cat-256", 1, 5, 0, False), "google/ddpm-cat-256' is not available"),
        ("/generate_unconditional", ("tiny-ddpm", 1, 5, -5, False), "less than minimum value 0"),
        ("/generate_ddim", ("tiny-ddpm", 0, 0.0, 1, 1, 0, False), "less than minimum value 1"),
        ("/generate_ddim", ("tiny-ddpm", 5, 1.5, 1, 1, 0, False), "greater than maximum value 1"),
        ("/generate_ddim", ("tiny-ddpm", 5000, 0.0, 1, 1, 0, False), "greater than maximum value 1000"),
    ],
)
def test_bad_input_gets_a_clear_error_and_the_server_keeps_serving(client, api_name, args, message):
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name=api_name)
    gallery, _ = client.predict("tiny-ddpm", 1, 2, 0, False, api_name="/generate_unconditional")
    assert len(gallery) == 1


def test_digits_grid_has_one_row_per_digit(client):
    grid, report, gallery = client.predict("tiny-digits", ["3", "8"], 2, 4, "DDIM", 1, False, api_name="/generate_digits")
    image = Image.open(grid)
    assert image.size == (2 * 8 + 2, 2 * 8 + 2)
    assert parse_parameters(read_parameters(image))["Class"] == "3 8"
    assert [parse_parameters(read_parameters(i))["Class"] for i in gallery_images(gallery)] == ["3", "3", "8", "8"]
    assert "4 DDIM steps" in report
    # Written before the CFG scale existed, the call above gets the tab's default scale.
    assert parse_parameters(read_parameters(image))["CFG scale"] == f"{DEFAULT_CFG_SCALE:g}"


def test_digits_cfg_scale_reaches_the_images(client):
    grid, report, gallery = client.predict("tiny-digits", ["4"], 1, 3, "DDIM", 1, False, 0.5,
                                           api_name="/generate_digits")
    assert "CFG scale 0.5" in report
    assert parse_parameters(read_parameters(gallery_images(gallery)[0]))["CFG scale"] == "0.5"


def test_digits_without_a_choice_is_refused(client):
    with pytest.raises(AppError, match="Choose at least one class"):
        client.predict("tiny-digits", [], 2, 4, "DDIM", 1, False, api_name="/generate_digits")


def test_stop_cancels_a_run_and_the_next_request_is_served(client):
    job = client.submit("tiny-ddpm", 2, 1000, 0, False, api_name="/generate_unconditional")
    outputs = wait_for_first_output(job)
    assert outputs and outputs[-1][1].startswith("Step "), "no progress report arrived"
    cancel_and_wait(job)
    assert job.status().code == Status.CANCELLED
    gallery, report = client.predict("tiny-ddpm", 1, 2, 0, False, api_name="/generate_unconditional")
    assert len(gallery) == 1 and "2 DDPM steps" in report


def test_stop_cancels_only_the_clicking_users_run(server_url):
    """Two users: the one who stops loses their run; the other's run, queued behind it, completes."""
    stopper, other = Client(server_url, verbose=False), Client(server_url, verbose=False)
    stopped = stopper.submit("tiny-ddpm", 2, 1000, 0, False, api_name="/generate_unconditional")
    wait_for_first_output(stopped)
    kept = other.submit("tiny-ddpm", 1, 20, 9, False, api_name="/generate_unconditional")
    stopped.cancel()
    gallery, report = kept.result(timeout=120)
    assert stopped.status().code == Status.CANCELLED
    assert len(gallery) == 1 and "Seed 9" in report and "20 DDPM steps" in report


def loss_rows(plot):
    return [dict(zip(plot["columns"], row)) for row in plot["data"]]


def test_colour_guidance_side_by_side_with_loss_plot(client):
    guided, unguided, plot, report = client.predict(
        "tiny-ddpm", "#1f5fd1", 20, "fast", 2, 10, "DDIM", True, 1, 0, 1, 3, False,
        api_name="/generate_colour_guidance")
    guided_images, unguided_images = gallery_images(guided), gallery_images(unguided)
    assert len(guided_images) == len(unguided_images) == 2
    params = parse_parameters(read_parameters(guided_images[0]))
    assert params["Guidance"] == "colour" and params["Colour"] == "#1f5fd1" and params["Guidance scale"] == "20"
    assert parse_parameters(read_parameters(unguided_images[0]))["Guidance scale"] == "0"
    assert [p["Seed"] for p in map(parse_parameters, map(read_parameters, unguided_images))] == ["3", "4"]
    rows = loss_rows(plot)
    assert {row["run"] for row in rows} == {"guided", "unguided"}
    assert sum(row["run"] == "guided" for row in rows) == 10
    distances = dict(part.split() for part in report.split("0-1): ")[1].split(", "))
    assert float(distances["guided"]) < 0.5 * float(distances["unguided"])


def test_clip_guidance_with_a_local_checkpoint(client, tiny_clip):
    config, checkpoint = tiny_clip
    gallery, plot, report, unguided = client.predict(
        "tiny-ddpm", "a red apple", "tiny-random-clip", str(checkpoint), 50, "exact", 3, 2, 6, "DDIM", 2, 0, 1, 5,
        False, api_name="/generate_clip_guidance")
    assert unguided == []  # "Unguided vs guided" is off unless asked
    images = gallery_images(gallery)
    params = parse_parameters(read_parameters(images[0]))
    assert params["Prompt"] == "a red apple" and params["Guidance"] == "CLIP" and params["Cutouts"] == "3"
    assert params["Guidance every"] == "2" and params["Guidance method"] == "exact"
    assert [row["step"] for row in loss_rows(plot)] == [1, 3, 5]
    assert "3 cutouts" in report and "tiny-random-clip" in report


def test_clip_guidance_samples_unguided_from_the_same_seeds_when_asked(client, tiny_clip):
    arguments = ("tiny-ddpm", "a red apple", "tiny-random-clip", str(tiny_clip[1]), 200, "fast", 2, 2, 4, "DDIM", 1,
                 0, 1, 5, False)
    gallery, plot, report, unguided = client.predict(*arguments, True, api_name="/generate_clip_guidance")
    guided, unguided = gallery_images(gallery), gallery_images(unguided)
    assert len(unguided) == 2 and "unguided in" in report
    assert {row["run"] for row in loss_rows(plot)} == {"guided", "unguided"}
    assert [parse_parameters(read_parameters(image))["Seed"] for image in unguided] == ["5", "6"]
    assert not np.array_equal(np.asarray(guided[0]), np.asarray(unguided[0]))  # the scale of 200 steered it
    alone, _, _, _ = client.predict(*arguments, api_name="/generate_clip_guidance")
    assert np.array_equal(np.asarray(gallery_images(alone)[0]), np.asarray(guided[0]))  # the same guided images


def test_clip_guidance_says_when_the_prompt_was_truncated(client, tiny_clip):
    _, _, report, _ = client.predict(
        "tiny-ddpm", "a red apple " * 10, "tiny-random-clip", str(tiny_clip[1]), 10, "fast", 1, 1, 2, "DDIM", 1, 0,
        1, 0, False, api_name="/generate_clip_guidance")
    assert "so it was truncated" in report


@pytest.mark.parametrize(
    "api_name, args, message",
    [
        ("/generate_clip_guidance", ("tiny-ddpm", "  ", "ViT-B-32", "openai", 10, "fast", 4, 1, 5, "DDIM", 1, 0, 1, 0,
                                     False), "Enter a prompt"),
        ("/generate_clip_guidance", ("tiny-ddpm", "a cat", "ViT-B-32", "openai", 10, "fast", 4, 1, 5, "DDIM", 1, 0, 1,
                                     0, False), "CLIP model ViT-B-32 with weights 'openai' is not available"),
        ("/generate_clip_guidance", ("tiny-ddpm", "a cat", "ViT-B-32", "openai", 10, "fast", 0, 1, 5, "DDIM", 1, 0, 1,
                                     0, False), "less than minimum value 1"),
        ("/generate_clip_guidance", ("tiny-ddpm", "a cat", "ViT-B-32", "openai", 10, "fast", 65, 1, 5, "DDIM", 1, 0,
                                     1, 0, False), "greater than maximum value 64"),
        ("/generate_colour_guidance", ("tiny-ddpm", "#ff0000", -1, "fast", 1, 5, "DDIM", False, 1, 0, 1, 0, False),
         "less than minimum value 0"),
        ("/generate_colour_guidance", ("tiny-ddpm", "nope", 5, "fast", 1, 5, "DDIM", False, 1, 0, 1, 0, False),
         "Colour must be like #ff8000"),
        ("/generate_colour_guidance", ("tiny-ddpm", "#ff0000", 5, "fast", 1, 5, "DDIM", False, 1, 0.6, 0.4, 0, False),
         "Guidance start \\(0.6\\) must come before its end \\(0.4\\)"),
    ],
)
def test_bad_guidance_input_gets_a_clear_error(client, api_name, args, message):
    with pytest.raises(AppError, match=message):
        client.predict(*args, api_name=api_name)
    guided, _, _, _ = client.predict("tiny-ddpm", "#ff0000", 5, "fast", 1, 2, "DDIM", False, 1, 0, 1, 0, False,
                                     api_name="/generate_colour_guidance")
    assert len(guided) == 1


def test_stop_cancels_a_guided_run(client):
    job = client.submit("tiny-ddpm", "#ff0000", 5, "exact", 1, 1000, "DDPM", True, 1, 0, 1, 0, False,
                        api_name="/generate_colour_guidance")
    outputs = wait_for_first_output(job)
    assert outputs and "step" in outputs[-1][3], "no progress report arrived"
    cancel_and_wait(job)
    assert job.status().code == Status.CANCELLED
