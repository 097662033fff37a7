"""Stable Diffusion step by step: the loop written out makes the Text to image tab's image to the pixel (float32),
keeps what every stage made, and refuses what it cannot show with a clear message."""

from __future__ import annotations

import numpy as np
import pytest
from gradio_client import Client

from conftest import TINY_LCM_LORA, TINY_SD_MODEL
from diffusion_app.service.generation.step_by_step import StepByStepRun, parse_decode_steps
from diffusion_app.service.generation.text2img import TextToImageRequest, generate


def run_to_end(run: StepByStepRun) -> StepByStepRun:
    for _ in run:
        pass
    return run


@pytest.mark.parametrize("scheduler, guidance_scale", [("DPM++ 2M", 7.5), ("Euler a", 5.0), ("PNDM", 1.0)])
def test_the_written_out_loop_makes_the_pipelines_image(studio, scheduler, guidance_scale):
    request = TextToImageRequest(TINY_SD_MODEL, "a red apple", negative_prompt="blurry", steps=4, width=64,
                                 height=64, seed=7, scheduler=scheduler, guidance_scale=guidance_scale)
    plain, _ = generate(studio, request)
    run = run_to_end(StepByStepRun(studio, request, decode_steps=(2,)))
    assert np.array_equal(np.asarray(plain[0]), np.asarray(run.images[0]))
    assert run.images[0].info["parameters"] == plain[0].info["parameters"]  # Text to image reads it back the same


def test_every_stage_is_kept(studio):
    request = TextToImageRequest(TINY_SD_MODEL, "a red apple", steps=5, width=64, height=64, seed=1,
                                 scheduler="DDIM")
    run = run_to_end(StepByStepRun(studio, request, decode_steps=(1, 4)))
    tokenizer = studio.pipeline(TINY_SD_MODEL, "text-to-image").tokenizer
    assert [token.role for token in run.tokens[:5]] == ["start", "word", "word", "word", "end"]
    assert [token.id for token in run.tokens[:5]] == tokenizer("a red apple").input_ids
    assert run.embeddings_shape[:2] == (2, tokenizer.model_max_length)  # negative prompt and prompt
    assert run.latents_shape == (1, 4, 8, 8)
    assert [step.index for step in run.steps] == list(range(5))
    timesteps = [step.timestep for step in run.steps]
    assert timesteps == sorted(timesteps, reverse=True) and len(set(timesteps)) == 5
    sigmas = [step.sigma for step in run.steps]
    assert sigmas == sorted(sigmas, reverse=True) and sigmas[-1] > 0  # DDIM: from alpha_bar, falling
    assert [step.decoded is not None for step in run.steps] == [True, False, False, True, False]
    assert run.steps[0].decoded.size == (64, 64)
    assert all(step.unconditional_rms > 0 and step.conditional_rms > 0 for step in run.steps)
    # Without guidance there is one prediction: the prompt's, which is the one stepped with.
    unguided = run_to_end(StepByStepRun(studio, TextToImageRequest(
        TINY_SD_MODEL, "a red apple", steps=2, width=64, height=64, seed=1, guidance_scale=1)))
    assert unguided.embeddings_shape[0] == 1
    assert all(step.unconditional_rms is None and step.guided_rms == step.conditional_rms
               for step in unguided.steps)


def test_a_lora_another_request_left_active_is_not_used(studio):
    request = TextToImageRequest(TINY_SD_MODEL, "a red apple", steps=3, width=64, height=64, seed=4)
    base = run_to_end(StepByStepRun(studio, request)).images[0]
    generate(studio, TextToImageRequest(TINY_SD_MODEL, "a red apple", steps=3, width=64, height=64, seed=4,
                                        lora=TINY_LCM_LORA, scheduler="LCM"))
    again = run_to_end(StepByStepRun(studio, request)).images[0]
    assert np.array_equal(np.asarray(base), np.asarray(again))


def test_a_long_prompt_shows_what_is_cut(studio):
    request = TextToImageRequest(TINY_SD_MODEL, "apple " * 80 + "zebra", steps=1, width=64, height=64, seed=0)
    run = run_to_end(StepByStepRun(studio, request))
    cut = [token.text for token in run.tokens if token.role == "cut"]
    assert cut[-1] == "zebra</w>" and len(cut) == 80 - 75 + 1


@pytest.mark.parametrize("text, message", [
    ("5, x", "whole numbers separated by commas"),
    ("0, 3", "from 1 to 10"),
    ("11", "from 1 to 10"),
    (", ".join(str(step) for step in range(1, 11)) + ", 3", None),  # duplicates fold: 10 steps
])
def test_decode_steps_are_read_or_refused_with_a_message(text, message):
    if message is None:
        assert parse_decode_steps(text, 10) == tuple(range(1, 11))
    else:
        with pytest.raises(ValueError, match=message):
            parse_decode_steps(text, 10)


def test_what_it_cannot_show_is_refused(studio):
    with pytest.raises(ValueError, match="no LoRA"):
        StepByStepRun(studio, TextToImageRequest(TINY_SD_MODEL, "apple", lora=TINY_LCM_LORA, width=64, height=64))
    with pytest.raises(ValueError, match="one image at a time"):
        StepByStepRun(studio, TextToImageRequest(TINY_SD_MODEL, "apple", num_images=2, width=64, height=64))


def test_the_endpoint_returns_every_stage(server_url):
    client = Client(server_url, verbose=False)
    image, report, stages, tokens, chart, steps, decoded = client.predict(
        TINY_SD_MODEL, "a red apple", "", "Euler", 3, 7.5, "2", 11, False, api_name="/generate_step_by_step")
    assert report.startswith("Seed 11 · 3 Euler steps") and "**4. Denoise**: 3 steps of Euler" in stages
    assert [row[2] for row in tokens["data"][:5]] == ["<|startoftext|>", "a</w>", "red</w>", "apple</w>",
                                                      "<|endoftext|>"]
    assert [row[0] for row in steps["data"]] == [1, 2, 3] and len(decoded) == 1 and decoded[0]["caption"] == "Step 2"
    assert [row[:2] for row in chart["data"][:3]] == [[1, "negative prompt"], [1, "prompt"], [1, "guided"]]
    assert len(chart["data"]) == 9 and all(row[2] > 0 for row in chart["data"])
    with pytest.raises(Exception, match="Steps to decode must be from 1 to 3"):
        client.predict(TINY_SD_MODEL, "a red apple", "", "Euler", 3, 7.5, "4", 11, False,
                       api_name="/generate_step_by_step")
    again = client.predict(TINY_SD_MODEL, "a red apple", "", "Euler", 3, 7.5, "", 11, False,
                           api_name="/generate_step_by_step")  # the server kept serving
    assert again[1].startswith("Seed 11 · 3 Euler steps") and again[6] == []
