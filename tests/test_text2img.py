"""Stable Diffusion text to image on a tiny random-weight pipeline, loaded through the catalog like any model."""

import threading
import weakref

import numpy as np
import open_clip
import pytest
import torch
from diffusers import StableDiffusionPipeline
from diffusers.models.attention_processor import AttnProcessor2_0, SlicedAttnProcessor
from PIL import Image

from app import parse_args
from diffusion_app.catalog import TEXT_TO_IMAGE, UnknownModelError, build_catalog
from diffusion_app.service.models.loading import ModelUnavailableError, load_pipeline
from diffusion_app.service.models.model_configs import native_resolution
from diffusion_app.core.metadata import save_png
from diffusion_app.core.schedulers import TEXT_TO_IMAGE_SCHEDULERS
from diffusion_app.service.studio import Studio
from diffusion_app.service.generation.text2img import (
    MAX_STEPS,
    GenerationStopped,
    TextToImageRequest,
    TextToImageRun,
    generate,
)
from diffusion_app.service.generation.text2img_parameters import request_fields, request_fields_from_png
from diffusion_app.settings import MemorySavers, Settings
from diffusion_app.tiny_sd import build_tiny_sd_pipeline, clip_tokenizer
from diffusion_app.ui.text2img import model_status, native_side
from conftest import TINY_SD_MODEL

HUB_SD = "stable-diffusion-v1-5/stable-diffusion-v1-5"


@pytest.fixture(scope="module")
def studio(models_dir, tmp_path_factory):
    """One studio for the module, so the tiny pipeline loads once."""
    return Studio(Settings(models_dir=models_dir, data_dir=tmp_path_factory.mktemp("data"), offline=True))


def request(**changes) -> TextToImageRequest:
    fields = dict(model=TINY_SD_MODEL, prompt="a red fox in the snow", steps=4, width=64, height=64, seed=3,
                  scheduler="Euler")
    return TextToImageRequest(**{**fields, **changes})


def pixels(images):
    return [np.asarray(image) for image in images]


def same_images(left, right) -> bool:
    return len(left) == len(right) and all(np.array_equal(a, b) for a, b in zip(pixels(left), pixels(right)))


@pytest.mark.parametrize("text", [
    "a photo of an astronaut riding a horse on mars",
    "Hello, World! It's 42 degrees... don't PANIC",
    "café crème brûlée, 東京 at night 😀",
    "  tabs\tand\nnewlines  collapse ",
    " ".join(["a very long prompt"] * 40),
])
def test_generated_clip_tokenizer_matches_open_clip(tmp_path, text):
    tokenizer = clip_tokenizer(tmp_path)
    assert len(tokenizer) == 49408 and tokenizer.model_max_length == 77
    ids = tokenizer(text, truncation=True, max_length=77).input_ids
    reference = open_clip.tokenize([text])[0].tolist()  # zero-padded to 77
    assert ids == reference[:len(ids)] and not any(reference[len(ids):])


def test_tiny_sd_loads_through_the_catalog_with_sdpa_attention(studio, models_dir):
    entry = build_catalog([models_dir]).get(TINY_SD_MODEL)
    assert entry.kind == TEXT_TO_IMAGE and entry.available_offline()
    pipeline = studio.pipeline(TINY_SD_MODEL, TEXT_TO_IMAGE)
    assert isinstance(pipeline, StableDiffusionPipeline)
    assert {type(p) for p in pipeline.unet.attn_processors.values()} == {AttnProcessor2_0}


def test_memory_savers_are_applied_when_loading(models_dir):
    entry = build_catalog([models_dir]).get(TINY_SD_MODEL)
    savers = MemorySavers(attention_slicing=True, vae_slicing=True, vae_tiling=True)
    pipeline = load_pipeline(entry, "cpu", torch.float32, offline=True, memory=savers)
    assert {type(p) for p in pipeline.unet.attn_processors.values()} == {SlicedAttnProcessor}
    assert pipeline.vae.use_slicing and pipeline.vae.use_tiling
    plain = load_pipeline(entry, "cpu", torch.float32, offline=True)
    assert not (plain.vae.use_slicing or plain.vae.use_tiling)


def test_memory_saver_settings_and_flags():
    settings = Settings.from_env({"DS_DEVICE": "cpu", "DS_VAE_TILING": "1", "DS_ATTENTION_SLICING": "yes"})
    assert settings.memory == MemorySavers(attention_slicing=True, vae_tiling=True)
    on_gpu = settings.with_cli_args(parse_args(["--device", "cuda", "--vae-slicing", "--cpu-offload"]))
    assert on_gpu.memory == MemorySavers(attention_slicing=True, vae_slicing=True, vae_tiling=True, cpu_offload=True)
    with pytest.raises(ValueError, match="CPU offload .* needs a CUDA device, not 'cpu'"):
        settings.with_cli_args(parse_args(["--cpu-offload"]))


@pytest.mark.parametrize("scheduler", list(TEXT_TO_IMAGE_SCHEDULERS))
def test_each_scheduler_gives_its_own_reproducible_images(studio, scheduler):
    shared = studio.pipeline(TINY_SD_MODEL, TEXT_TO_IMAGE)
    shared_scheduler = shared.scheduler
    images, run = generate(studio, request(scheduler=scheduler, num_images=2))
    assert type(run.pipeline.scheduler) is TEXT_TO_IMAGE_SCHEDULERS[scheduler]
    assert shared.scheduler is shared_scheduler  # the cached pipeline is untouched
    assert [image.size for image in images] == [(64, 64)] * 2
    assert "Sampler: " + scheduler in images[0].info["parameters"]
    again, _ = generate(studio, request(scheduler=scheduler, num_images=2))
    assert same_images(images, again)


def test_schedulers_differ_from_each_other(studio):
    results = [generate(studio, request(scheduler=name))[0][0] for name in ("Euler", "DDIM", "DPM++ 2M")]
    assert not np.array_equal(*pixels(results[:2])) and not np.array_equal(*pixels(results[1:]))


def test_seeds(studio):
    batch, run = generate(studio, request(num_images=3, seed=100))
    assert run.seeds == [100, 101, 102]
    other, _ = generate(studio, request(seed=101))
    difference = np.abs(pixels(batch)[1].astype(int) - pixels(other)[0].astype(int))
    assert difference.max() <= 1  # batched convolutions may round differently in the last bit
    assert not np.array_equal(pixels(batch)[0], pixels(batch)[1])


def test_random_seed_is_reported_and_reproduces(studio):
    images, run = generate(studio, request(seed=None))
    assert isinstance(run.request.seed, int)
    assert f"Seed: {run.request.seed}" in images[0].info["parameters"]
    again, _ = generate(studio, request(seed=run.request.seed))
    assert same_images(images, again)


def test_negative_prompt_steers_only_with_guidance(studio):
    plain, _ = generate(studio, request())
    negative, _ = generate(studio, request(negative_prompt="blurry, grey"))
    assert not same_images(plain, negative)
    unguided, _ = generate(studio, request(guidance_scale=1))
    unguided_negative, _ = generate(studio, request(guidance_scale=1, negative_prompt="blurry, grey"))
    assert same_images(unguided, unguided_negative)
    assert not same_images(plain, unguided)


def test_prompt_changes_the_image(studio):
    assert not same_images(generate(studio, request())[0], generate(studio, request(prompt="a blue whale"))[0])


def test_previews_every_k_steps_at_latent_size(studio):
    run = TextToImageRun(studio, request(steps=7, num_images=2, width=64, height=128), preview_every=2)
    steps = list(run)
    assert [step.index for step in steps] == list(range(7)) and {step.total for step in steps} == {7}
    previews = [step for step in steps if step.preview is not None]
    assert [step.index + 1 for step in previews] == [2, 4, 6]  # the last step gives the final images instead
    assert all(len(step.preview) == 2 and step.preview[0].size == (8, 16) for step in previews)
    assert not any(step.preview for step in TextToImageRun(studio, request(steps=3)))


def test_pndm_runs_one_step_more_than_asked(studio):
    run = TextToImageRun(studio, request(steps=4, scheduler="PNDM"), preview_every=1)
    steps = list(run)
    assert len(steps) == 5 and steps[-1].total == 5 and "Steps: 4" in run.images[0].info["parameters"]


@pytest.mark.parametrize("changes, message", [
    ({"width": 100}, "Width must be a multiple of 8 from 64 to 2048 pixels, got 100"),
    ({"height": 4096}, "Height must be a multiple of 8 from 64 to 2048"),
    ({"width": 32}, "Width must be a multiple of 8 from 64"),
    ({"width": 64.0}, "Width must be a multiple of 8"),
    ({"steps": 0}, "Steps must be a whole number from 1 to 150"),
    ({"guidance_scale": 0.5}, "CFG scale must be a number from 1"),
    ({"guidance_scale": float("nan")}, "CFG scale must be a number"),
    ({"scheduler": "Heun"}, "Unknown sampler 'Heun'; choose one of DPM\\+\\+ 2M, Euler a"),
    ({"num_images": 9}, "Number of images must be a whole number from 1 to 8"),
    ({"prompt": None}, "Prompt must be text"),
    ({"seed": -1}, "Seed must be a whole number"),
])
def test_bad_requests_are_refused_before_loading(settings, changes, message):
    fresh = Studio(settings)
    with pytest.raises(ValueError, match=message):
        TextToImageRun(fresh, request(**changes))
    assert fresh.cache.loaded() == []


def test_over_long_prompts_are_truncated_and_reported_when_asked(studio):
    """(Unless asked, they are encoded in chunks: test_weighted_prompts.py.)"""
    prompt = " ".join(["cat"] * 80 + ["zebra", "giraffe"])  # 82 tokens; the encoder reads 75 between start and end
    _, run = generate(studio, request(prompt=prompt, negative_prompt="dog " * 100, truncate_long_prompts=True))
    assert run.truncated["Prompt"] == "cat cat cat cat cat zebra giraffe"
    assert run.truncated["Negative prompt"] == " ".join(["dog"] * 25)
    assert generate(studio, request(truncate_long_prompts=True))[1].truncated == {}


def test_parameters_round_trip_to_the_same_image(studio, tmp_path):
    original = request(prompt="a fox, sitting: on \"snow\"\nsecond line", negative_prompt="blurry, dark",
                       scheduler="Euler a", guidance_scale=6.5, width=72, height=64, steps=5, seed=77)
    images, _ = generate(studio, original)
    path = save_png(images[0], tmp_path / "fox.png")
    fields, notes = request_fields_from_png(path)
    assert notes == []
    assert fields == {"prompt": original.prompt, "negative_prompt": original.negative_prompt, "steps": 5,
                      "guidance_scale": 6.5, "seed": 77, "width": 72, "height": 64, "scheduler": "Euler a",
                      "model": TINY_SD_MODEL}
    again, _ = generate(studio, TextToImageRequest(**fields))
    assert same_images(images, again)


def test_parameters_written_by_other_uis():
    fields, notes = request_fields("masterpiece, a red fox\nNegative prompt: ugly\nSteps: 28, "
                                   "Sampler: DPM++ 2M Karras, CFG scale: 6, Seed: 123, Size: 512x768, "
                                   "Model hash: abc123, Model: v1-5-pruned")
    assert fields == {"prompt": "masterpiece, a red fox", "negative_prompt": "ugly", "steps": 28,
                      "guidance_scale": 6.0, "seed": 123, "width": 512, "height": 768, "model": "v1-5-pruned"}
    assert notes == ["sampler 'DPM++ 2M Karras' is not offered here"]
    fields, notes = request_fields("Steps: many, Size: big, Sampler: Euler a")
    assert fields == {"prompt": "", "negative_prompt": "", "scheduler": "Euler a"}
    assert notes == ["Steps 'many' is not a number", "Size 'big' is not WIDTHxHEIGHT"]


def test_images_without_parameters_are_refused(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "plain.png")
    (tmp_path / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match="no generation parameters"):
        request_fields_from_png(tmp_path / "plain.png")
    with pytest.raises(ValueError, match="Could not read the image"):
        request_fields_from_png(tmp_path / "notes.txt")


def test_closing_the_iteration_stops_the_pipeline_call(studio):
    run = TextToImageRun(studio, request(steps=MAX_STEPS, width=128, height=128))
    steps = iter(run)
    first = next(steps)
    ahead = run._steps.qsize()  # steps the worker had finished beyond the one read
    steps.close()  # what Gradio does when Stop cancels the event
    run.worker.join(timeout=60)
    assert not run.worker.is_alive() and first.index == 0 and run.images is None
    *later_steps, last = [run._steps.get() for _ in range(run._steps.qsize())]
    assert isinstance(last, GenerationStopped), last  # the call ended early: no more steps, no VAE decode
    # Beyond those, at most the step under way when Stop came and one begun meanwhile.
    assert len(later_steps) - ahead <= 2 and all(step.index < MAX_STEPS - 1 for step in later_steps)


def test_concurrent_requests_get_the_images_they_would_get_alone(studio):
    # Different samplers and prompts on one model at once: each request has its own scheduler, and prompts are
    # encoded one at a time (a fast tokenizer's padding settings are shared state).
    requests = [request(scheduler=name, seed=seed, steps=1, prompt=prompt, negative_prompt=negative)
                for name, seed, prompt, negative in (("Euler a", 1, "a cat", "dog"), ("DDIM", 2, "a dog " * 30, ""),
                                                     ("UniPC", 3, "an owl at night", "day, sun, " * 20))] * 6
    expected = [generate(studio, r)[0] for r in requests[:3]] * 6
    results = [None] * len(requests)

    def run(index):
        results[index] = generate(studio, requests[index])[0]

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(same_images(a, b) for a, b in zip(expected, results))


@pytest.fixture(scope="module")
def second_sd_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("second-sd")
    build_tiny_sd_pipeline(folder / "tiny-sd-b", seed=4)
    return folder


def test_switching_models_evicts_and_frees_the_previous_one(models_dir, second_sd_dir, tmp_path):
    studio = Studio(Settings(models_dir=models_dir, data_dir=tmp_path, offline=True, cache_max_models=1),
                    build_catalog([models_dir, second_sd_dir]))
    unets = []
    for model in [TINY_SD_MODEL, "tiny-sd-b"] * 3:
        generate(studio, request(model=model, steps=2))
        unets.append(weakref.ref(studio.pipeline(model, TEXT_TO_IMAGE).unet))
        assert studio.cache.loaded() == [model]
    # Freed on eviction, without waiting for the garbage collector, so the cache's empty_cache() returns the memory.
    assert [ref() is not None for ref in unets] == [False] * 5 + [True]


def test_any_local_folder_or_hub_id_can_be_chosen(studio, second_sd_dir, models_dir):
    folder = str(second_sd_dir / "tiny-sd-b")
    images, _ = generate(studio, request(model=folder))
    assert len(images) == 1 and f"Model: {folder}" in images[0].info["parameters"]
    assert folder in studio.catalog.names(TEXT_TO_IMAGE)
    with pytest.raises(UnknownModelError, match="choose a listed model, a hub repo id"):
        generate(studio, request(model="not a model"))
    with pytest.raises(ValueError, match="is of kind 'unconditional'"):
        generate(studio, request(model=str(models_dir / "tiny-ddpm")))


def test_offline_the_hub_model_is_reported_unavailable_with_how_to_provide_it(studio):
    assert HUB_SD in studio.catalog.names(TEXT_TO_IMAGE)
    status = model_status(studio, HUB_SD)
    assert "not available offline" in status and "--add-model" in status
    with pytest.raises(ModelUnavailableError, match=f"Model '{HUB_SD}' is not available.*--add-model"):
        generate(studio, request(model=HUB_SD))
    assert "available on this machine" in model_status(studio, TINY_SD_MODEL)
    assert len(generate(studio, request())[0]) == 1  # nothing else is affected


def test_the_tab_starts_at_the_size_the_model_was_trained_at(studio):
    # tiny-sd: an 8x8 latent UNet under a VAE that halves three times
    assert native_resolution(studio.catalog.get(TINY_SD_MODEL)) == 64
    assert native_side(studio, TINY_SD_MODEL) == 64
    assert native_resolution(studio.catalog.find(HUB_SD, TEXT_TO_IMAGE)) is None  # not on this machine
    assert native_side(studio, HUB_SD) == 512  # Stable Diffusion 1.5's size until its configs are here
    assert native_side(studio, "no such model") == 512
