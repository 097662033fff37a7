"""ZeroGPU mode, forced (DS_ZEROGPU=1) on the CPU: every model-using handler runs inside @spaces.GPU with a
duration from its inputs, models load at start-up only, and what a GPU call returns pickles (it crosses from
the forked process that ZeroGPU runs it in)."""

from __future__ import annotations

import pickle

import pytest
from PIL import Image

from diffusion_app.catalog import TEXT_TO_IMAGE, UNCONDITIONAL
from diffusion_app.service.gpu_time import START_UP_SECONDS, gpu_seconds
from diffusion_app.service.models.loading import ModelUnavailableError
from diffusion_app.service.generation.sampling import SamplingRequest, sample
from diffusion_app.service.studio import Studio
from diffusion_app.settings import Settings
from diffusion_app.ui import build_app
from conftest import TINY_MODEL, TINY_SD_MODEL, TINY_TAESD

GENERATION_CALLS = {  # a valid call of every generation endpoint, on the tiny models
    "generate_unconditional": (TINY_MODEL, 2, 3, 5, False),
    "generate_ddim": (TINY_MODEL, 3, 0.0, 1, 1, 5, False),
    "generate_digits": ("tiny-digits", [3, 7], 1, 3, "DDIM", 5, False, 3.0),  # indices: called past gradio
    "generate_colour_guidance": (TINY_MODEL, "#ff0000", 5, "fast", 1, 3, "DDIM", True, 1, 0, 1, 5, False),
    "generate_text2img": (TINY_SD_MODEL, "a red apple", "", "Euler", 2, 7.5, 64, 64, 1, 1, 5, False, "", 1.0),
    "generate_attention_maps": (TINY_SD_MODEL, "a red apple", "", "Euler", 2, 7.5, 1, 0, 5, False),
    "generate_step_by_step": (TINY_SD_MODEL, "a red apple", "", "Euler a", 2, 7.5, "1", 5, False),
    "generate_inpaint": (TINY_MODEL, {"background": Image.new("RGB", (16, 16)), "layers": [], "composite": None},
                         Image.linear_gradient("L").resize((16, 16)), "RePaint",  # the bottom half white
                         2, 2, "", "", 7.5, 1.0, 4, "Whole picture", 32, 0, 0, 0, 0, "DDPM", 2, 1, 5,
                         False),
}


@pytest.fixture(scope="module")
def zerogpu_studio(models_dir, tmp_path_factory) -> Studio:
    """As app.py starts on ZeroGPU: the tabs' default models preloaded, then loading closed."""
    settings = Settings.from_env({"DS_ZEROGPU": "1", "DS_DEVICE": "cpu", "DS_DTYPE": "float32", "DS_OFFLINE": "1",
                                  "DS_MODELS_DIR": str(models_dir), "DS_PRELOAD": "tiny-digits",
                                  "DS_DATA_DIR": str(tmp_path_factory.mktemp("data"))})
    studio = Studio(settings)
    studio.preload(studio.default_models())
    return studio


@pytest.fixture(scope="module")
def app(zerogpu_studio):
    return build_app(zerogpu_studio)


def test_zerogpu_mode_is_what_spaces_detects_or_the_setting_forces(monkeypatch):
    from spaces.config import Config

    assert Settings.from_env({"DS_ZEROGPU": "1", "DS_DEVICE": "cpu"}).zerogpu
    monkeypatch.setattr(Config, "zero_gpu", True)
    on_space = Settings.from_env({})
    assert on_space.zerogpu and on_space.device == "cuda" and on_space.training_device == "cpu"
    with pytest.raises(ValueError, match="ZeroGPU does not support torch.compile"):
        Settings.from_env({"DS_COMPILE": "1"})


def test_every_model_using_handler_asks_for_gpu_time(app):
    # A sweep runs its tab's handler once a cell: each cell is such a GPU call.
    generation = [fn for fn in app.fns.values() if fn.concurrency_id == "generation"
                  and not fn.api_name.startswith("sweep_")]
    assert {fn.api_name for fn in generation} >= set(GENERATION_CALLS) | {"generate_clip_guidance"}
    assert all(callable(getattr(fn.fn, "gpu_seconds", None)) for fn in generation)


def test_the_duration_grows_with_the_work_and_respects_the_cap(app):
    assert START_UP_SECONDS < gpu_seconds(UNCONDITIONAL, 10, 1, 32 * 32) <= START_UP_SECONDS + 1
    uncapped = 10**6
    assert gpu_seconds(UNCONDITIONAL, 1000, 8, 64 * 64, cap=uncapped) > \
        gpu_seconds(UNCONDITIONAL, 100, 8, 64 * 64, cap=uncapped) > gpu_seconds(UNCONDITIONAL, 100, 1, 64 * 64)
    assert gpu_seconds(TEXT_TO_IMAGE, 30, 2, 64 * 64, passes=2) > gpu_seconds(TEXT_TO_IMAGE, 30, 1, 64 * 64, passes=2)
    assert gpu_seconds(TEXT_TO_IMAGE, 150, 8, 256 * 256, passes=2, cap=120) == 120
    fns = {fn.api_name: fn.fn for fn in app.fns.values()}
    text = fns["generate_text2img"].gpu_seconds
    small = text(TINY_SD_MODEL, "x", "", "Euler", 20, 7.5, 512, 512, 1, 5, 0, True)
    large = text(TINY_SD_MODEL, "x", "", "Euler", 20, 7.5, 1024, 1024, 4, 5, 0, True)
    assert START_UP_SECONDS < small < large <= 120  # DS_GPU_SECONDS_CAP
    inpaint = fns["generate_inpaint"].gpu_seconds  # RePaint runs the UNet about `resampling` times a step
    assert inpaint(TINY_MODEL, None, None, "RePaint", 5, 10, *[""] * 12, 1000, 8) > \
        inpaint(TINY_MODEL, None, None, "RePaint", 5, 1, *[""] * 12, 1000, 8)
    assert fns["generate_digits"].gpu_seconds("tiny-digits", [1, 2], 2, 1000, "DDPM", 0, True, 3.0) >= \
        fns["generate_digits"].gpu_seconds("tiny-digits", [1, 2], 2, 1000, "DDPM", 0, True, 1.0)


def test_preloaded_models_serve_and_others_get_a_message_not_a_load(zerogpu_studio):
    # each tab's default, and the default text-to-image model's tiny decoder (its previews)
    assert set(zerogpu_studio.cache.loaded()) == {TINY_MODEL, "tiny-digits", TINY_SD_MODEL, TINY_TAESD}
    images, _ = sample(zerogpu_studio, SamplingRequest(TINY_MODEL, steps=2, seed=1))
    assert len(images) == 1
    misses = zerogpu_studio.cache.misses
    with pytest.raises(ModelUnavailableError, match="'tiny-gray' is not loaded on this server.*DS_PRELOAD"):
        sample(zerogpu_studio, SamplingRequest("tiny-gray", steps=2, seed=1))
    assert zerogpu_studio.cache.misses == misses and "tiny-gray" not in zerogpu_studio.cache.loaded()


@pytest.mark.parametrize("api_name", list(GENERATION_CALLS))
def test_what_a_gpu_call_returns_pickles(app, api_name):
    handler = next(fn.fn for fn in app.fns.values() if fn.api_name == api_name)
    outputs = list(handler(*GENERATION_CALLS[api_name]))
    assert len(outputs) > 1  # previews or progress, then the result
    for output in outputs:
        assert pickle.loads(pickle.dumps(output)) is not None
    pickle.dumps(GENERATION_CALLS[api_name])  # and what goes in
