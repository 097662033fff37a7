import math
import threading

import numpy as np
import pytest
import torch

from diffusion_app.catalog import UNCONDITIONAL, UnknownModelError
from diffusion_app.demo_model import build_class_conditional_pipeline
from diffusion_app.service.models.loading import ModelUnavailableError
from diffusion_app.core.metadata import parse_parameters, read_parameters, save_png
from diffusion_app.service.generation.sampling import SamplingRequest, SamplingRun, sample
from diffusion_app.service.studio import Studio
from diffusion_app.settings import Settings

MODEL = "tiny-ddpm"


def pixels(images):
    return [np.asarray(image) for image in images]


def test_same_seed_same_images_other_seed_other_images(studio):
    request = SamplingRequest(MODEL, num_images=2, steps=10, seed=7)
    first, _ = sample(studio, request)
    again, _ = sample(studio, request)
    other, _ = sample(studio, SamplingRequest(MODEL, num_images=2, steps=10, seed=8))
    assert all(np.array_equal(a, b) for a, b in zip(pixels(first), pixels(again)))
    assert not np.array_equal(pixels(first)[0], pixels(other)[0])


def test_image_i_of_a_batch_uses_seed_plus_i(studio):
    batch, run = sample(studio, SamplingRequest(MODEL, num_images=3, steps=5, seed=100))
    alone, _ = sample(studio, SamplingRequest(MODEL, num_images=1, steps=5, seed=102))
    assert run.seeds == [100, 101, 102]
    difference = np.abs(pixels(batch)[2].astype(int) - pixels(alone)[0].astype(int))
    assert difference.max() <= 1  # batched convolutions may round differently in the last bit


def test_random_seed_is_reported_and_reproduces(studio):
    images, run = sample(studio, SamplingRequest(MODEL, steps=5, seed=None))
    seed = run.request.seed
    assert isinstance(seed, int)
    assert parse_parameters(images[0].info["parameters"])["Seed"] == str(seed)
    again, _ = sample(studio, SamplingRequest(MODEL, steps=5, seed=seed))
    assert np.array_equal(pixels(images)[0], pixels(again)[0])


@pytest.mark.parametrize("scheduler", ["DDPM", "DDIM"])
def test_concurrent_requests_match_their_solo_runs(studio, scheduler):
    """Threads share one cached model; each builds its own scheduler, so results equal solo runs.

    Different step counts per thread: a shared scheduler's set_timesteps would change the others' steps.
    """
    requests = [SamplingRequest(MODEL, steps=steps, seed=seed, scheduler=scheduler)
                for seed, steps in [(1, 4), (2, 9), (3, 14), (4, 19)]]
    solo = [pixels(sample(studio, request)[0])[0] for request in requests]
    concurrent = [None] * len(requests)
    start = threading.Barrier(len(requests))

    def worker(index):
        start.wait()
        concurrent[index] = pixels(sample(studio, requests[index])[0])[0]

    threads = [threading.Thread(target=worker, args=(index,)) for index in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert studio.cache.stats()["misses"] == 1
    for request, alone, together in zip(requests, solo, concurrent):
        assert np.array_equal(alone, together), f"seed {request.seed} differs when run concurrently"


def test_cached_scheduler_is_never_mutated(studio):
    pipeline = studio.pipeline(MODEL, UNCONDITIONAL)
    sample(studio, SamplingRequest(MODEL, steps=7, seed=0, scheduler="DDPM"))
    assert pipeline.scheduler.num_inference_steps is None
    assert len(pipeline.scheduler.timesteps) == pipeline.scheduler.config.num_train_timesteps


def test_ddim_reports_every_step_with_shapes(studio):
    run = SamplingRun(studio, SamplingRequest(MODEL, num_images=2, steps=12, seed=3, scheduler="DDIM", eta=0.5))
    steps = list(run)
    assert [s.index for s in steps] == list(range(12))
    assert all(s.total == 12 for s in steps)
    assert [s.timestep for s in steps] == sorted((s.timestep for s in steps), reverse=True)
    for step in steps:
        assert step.sample.shape == (2, 3, 16, 16)
        assert step.pred_original.shape == (2, 3, 16, 16)
        assert torch.isfinite(step.sample).all()
    images = run.images()
    assert [image.size for image in images] == [(16, 16), (16, 16)]
    assert parse_parameters(images[0].info["parameters"])["Eta"] == "0.5"


def test_ddim_eta_zero_is_deterministic_and_eta_changes_the_result(studio):
    def run(eta, seed):
        return pixels(sample(studio, SamplingRequest(MODEL, steps=10, seed=seed, scheduler="DDIM", eta=eta))[0])[0]

    assert np.array_equal(run(0.0, 5), run(0.0, 5))
    assert not np.array_equal(run(0.0, 5), run(1.0, 5))


def test_grayscale_model(studio):
    images, _ = sample(studio, SamplingRequest("tiny-gray", num_images=2, steps=3, seed=0))
    assert [(image.mode, image.size) for image in images] == [("L", (8, 8))] * 2


def test_png_parameters_survive_saving(studio, tmp_path):
    images, _ = sample(studio, SamplingRequest(MODEL, num_images=1, steps=4, seed=11, scheduler="DDIM"))
    path = save_png(images[0], tmp_path / "sample.png")
    parsed = parse_parameters(read_parameters(path))
    assert parsed == {"Steps": "4", "Sampler": "DDIM", "Eta": "0.0", "Seed": "11", "Size": "16x16",
                      "Model": MODEL}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"steps": 0}, "Steps must be a whole number from 1 to 1000"),
        ({"steps": 1001}, "Steps must be a whole number from 1 to 1000"),
        ({"steps": 2.5}, "Steps must be a whole number"),
        ({"num_images": 0}, "Number of images must be a whole number from 1 to 8"),
        ({"num_images": 9}, "Number of images must be a whole number from 1 to 8"),
        ({"eta": -0.1}, "Eta must be a number from 0"),
        ({"eta": 1.5}, "Eta must be a number from 0"),
        ({"eta": math.nan}, "Eta must be a number from 0"),
        ({"seed": -1}, "Seed must be a whole number from 0 to 4294967295"),
        ({"seed": 2**40}, "Seed must be a whole number"),
        ({"scheduler": "Euler"}, "Unknown scheduler 'Euler'"),
    ],
)
def test_invalid_requests_are_refused_clearly(studio, changes, message):
    request = SamplingRequest(MODEL, **{"steps": 5, "seed": 0, "scheduler": "DDIM", **changes})
    with pytest.raises(ValueError, match=message):
        SamplingRun(studio, request)


def test_unknown_model_lists_known_ones(studio):
    with pytest.raises(UnknownModelError, match="Unknown model 'nope'.*tiny-ddpm"):
        SamplingRun(studio, SamplingRequest("nope", steps=5))


def test_hub_model_offline_names_model_and_remedy(studio):
    with pytest.raises(ModelUnavailableError) as caught:
        SamplingRun(studio, SamplingRequest("google/ddpm-cat-256", steps=5, seed=0))
    message = str(caught.value)
    assert "google/ddpm-cat-256" in message
    assert "network" in message and "--add-model" in message and "HF_ENDPOINT" in message
    assert "Traceback" not in message
    images, _ = sample(studio, SamplingRequest(MODEL, steps=2, seed=0))  # the rest keeps working
    assert images


def test_class_conditional_rows_and_parameters(studio):
    run = SamplingRun(studio, SamplingRequest("tiny-digits", num_images=3, steps=4, seed=10, classes=(7, 2)))
    assert run.class_names == [str(d) for d in range(10)]
    assert run.class_labels.tolist() == [7, 7, 7, 2, 2, 2]
    list(run)
    images = run.images()
    assert [parse_parameters(image.info["parameters"])["Class"] for image in images] == ["7"] * 3 + ["2"] * 3
    assert run.seeds == list(range(10, 16))
    grid = run.grid(images)
    assert grid.size == (3 * 8 + 2 * 2, 2 * 8 + 2)  # 3 columns, 2 rows, 2 px gaps
    grid_parameters = parse_parameters(grid.info["parameters"])
    assert grid_parameters["Class"] == "7 2" and grid_parameters["Grid"] == "6 images"


def test_the_class_label_changes_the_sample(studio):
    def digit(label):
        return pixels(sample(studio, SamplingRequest("tiny-digits", steps=3, seed=0, classes=(label,)))[0])[0]

    assert np.array_equal(digit(3), digit(3))
    assert not np.array_equal(digit(3), digit(4))


@pytest.mark.parametrize(
    "model, classes, message",
    [
        ("tiny-digits", (10,), "Class 10 is not one of this model's classes: 0..9"),
        ("tiny-digits", (1, 1), "each at most once"),
        ("tiny-digits", (), "at least one class"),
        ("tiny-ddpm", (1,), "kind 'unconditional'; this needs kind 'class-conditional' \\(tiny-digits\\)"),
        ("tiny-digits", None, "kind 'class-conditional'; this needs kind 'unconditional'"),
    ],
)
def test_class_requests_are_checked(studio, model, classes, message):
    with pytest.raises(ValueError, match=message):
        SamplingRun(studio, SamplingRequest(model, steps=2, seed=0, classes=classes))


def digit_pixels(studio, label: int, guidance_scale: float, model: str = "tiny-digits") -> np.ndarray:
    request = SamplingRequest(model, steps=3, seed=0, scheduler="DDIM", classes=(label,), guidance_scale=guidance_scale)
    return pixels(sample(studio, request)[0])[0]


def test_cfg_scale_one_is_the_conditional_model_and_zero_ignores_the_class(studio):
    conditional = digit_pixels(studio, 3, 1.0)
    assert np.array_equal(conditional, pixels(sample(studio, SamplingRequest(
        "tiny-digits", steps=3, seed=0, scheduler="DDIM", classes=(3,)))[0])[0])  # 1 is the default
    class_ignored = digit_pixels(studio, 3, 0.0)
    assert np.array_equal(class_ignored, digit_pixels(studio, 7, 0.0))  # only the null class counts
    assert not np.array_equal(class_ignored, conditional)
    guided = digit_pixels(studio, 3, 4.0)
    assert not np.array_equal(guided, conditional) and not np.array_equal(guided, digit_pixels(studio, 7, 4.0))


def test_cfg_scale_is_recorded_in_the_parameters(studio):
    images, run = sample(studio, SamplingRequest("tiny-digits", steps=2, seed=0, classes=(5,), guidance_scale=2.5))
    assert parse_parameters(images[0].info["parameters"])["CFG scale"] == "2.5"
    assert parse_parameters(run.grid(images).info["parameters"])["CFG scale"] == "2.5"
    unconditional, _ = sample(studio, SamplingRequest(MODEL, steps=2, seed=0))
    assert "CFG scale" not in parse_parameters(unconditional[0].info["parameters"])


@pytest.mark.parametrize("scale", [-0.5, 10.5, math.nan, math.inf, True, "3"])
def test_cfg_scale_out_of_range_is_refused(studio, scale):
    with pytest.raises(ValueError, match="CFG scale must be a number from 0 to 10"):
        SamplingRun(studio, SamplingRequest("tiny-digits", steps=2, seed=0, classes=(1,), guidance_scale=scale))


def test_cfg_scale_on_an_unconditional_model_is_refused(studio):
    with pytest.raises(ValueError, match="class-conditional models only"):
        SamplingRun(studio, SamplingRequest(MODEL, steps=2, seed=0, guidance_scale=3))


def test_model_without_a_null_class_explains_that_it_cannot_be_guided(tmp_path):
    build_class_conditional_pipeline(tmp_path / "models" / "no-null", ["a", "b"], null_class=False, sample_size=8,
                                     channels=1, block_out_channels=(8, 16))
    studio = Studio(Settings(models_dir=tmp_path / "models", data_dir=tmp_path / "data", offline=True))
    with pytest.raises(ValueError, match="no-null was trained without class dropout.*set CFG scale to 1"):
        SamplingRun(studio, SamplingRequest("no-null", steps=2, seed=0, classes=(0,), guidance_scale=3))
    images, _ = sample(studio, SamplingRequest("no-null", steps=2, seed=0, classes=(0, 1)))
    assert len(images) == 2
