"""LoRA adapters in text to image: applied to the cached model without reloading it, weight 0 is the base, the
PNG parameters carry them, and concurrent requests with different adapters never mix."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from diffusion_app.catalog import LORA
from diffusion_app.service.studio import Studio
from diffusion_app.service.generation.text2img import TextToImageRequest, generate
from diffusion_app.service.generation.text2img_parameters import request_fields
from diffusion_app.settings import Settings
from diffusion_app.training.config import TrainingConfig
from diffusion_app.training.train import train
from conftest import TINY_LCM_LORA, TINY_SD_MODEL
from text_training_data import squares_folder


@pytest.fixture(scope="module")
def lora_studio(models_dir, tmp_path_factory) -> Studio:
    """The tiny models plus two LoRAs trained on tiny-sd, listed as the Training tab's jobs list theirs."""
    work = tmp_path_factory.mktemp("loras")
    data = squares_folder(work / "data", count=8, size=64)
    local_models = work / "data-dir" / "models"
    local_models.mkdir(parents=True)
    for name, seed in (("squares-a", 0), ("squares-b", 1)):
        folder = train(TrainingConfig(mode="lora", train_data_dir=str(data), output_dir=str(work / name),
                                      pretrained_model=str((models_dir / TINY_SD_MODEL).resolve()), resolution=64,
                                      max_train_steps=20, learning_rate=1e-2, seed=seed, train_batch_size=4,
                                      lr_warmup_steps=1, save_images_steps=0, checkpointing_steps=1000,
                                      use_ema=False, mixed_precision="no"))
        (local_models / name).symlink_to(folder)
    return Studio(Settings(models_dir=models_dir, data_dir=work / "data-dir", offline=True))


def pixels(images) -> np.ndarray:
    return np.stack([np.asarray(image, dtype=np.float64) for image in images])


def request(**changes) -> TextToImageRequest:
    return TextToImageRequest(**{"model": TINY_SD_MODEL, "prompt": "a red square", "steps": 3, "width": 64,
                                 "height": 64, "seed": 5, "num_images": 2, **changes})


def test_finished_loras_are_listed_with_their_base(lora_studio, models_dir):
    entry = lora_studio.catalog.get("squares-a")
    assert entry.kind == LORA and entry.base_model == str((models_dir / TINY_SD_MODEL).resolve())
    trained_here = {"squares-a", "squares-b"}
    already_there = {TINY_LCM_LORA, "latent-consistency/lcm-lora-sdv1-5"}  # the fixtures' and the hub's
    assert set(lora_studio.catalog.names(LORA)) == trained_here | already_there


def test_a_lora_changes_the_images_weight_zero_is_the_base_and_nothing_reloads(lora_studio):
    base, _ = generate(lora_studio, request())
    misses = lora_studio.cache.misses
    with_lora, run = generate(lora_studio, request(lora="squares-a", lora_weight=1.0))
    assert np.abs(pixels(with_lora) - pixels(base)).mean() > 1.0
    at_zero, _ = generate(lora_studio, request(lora="squares-a", lora_weight=0.0))
    assert np.array_equal(pixels(at_zero), pixels(base))
    again, _ = generate(lora_studio, request())  # no LoRA after one was used: the base again
    assert np.array_equal(pixels(again), pixels(base))
    assert lora_studio.cache.misses == misses  # the adapters went into the cached pipeline, nothing reloaded
    parameters = with_lora[0].info["parameters"]
    assert "LoRA: squares-a, LoRA weight: 1" in parameters
    fields, notes = request_fields(parameters)
    assert (fields["lora"], fields["lora_weight"], notes) == ("squares-a", 1.0, [])


def test_concurrent_requests_with_different_loras_get_what_they_get_alone(lora_studio):
    requests = [request(lora="squares-a", seed=1), request(lora="squares-b", seed=1), request(seed=1),
                request(lora="squares-a", lora_weight=0.5, seed=1)]
    alone = [pixels(generate(lora_studio, each)[0]) for each in requests]
    results: dict[int, np.ndarray] = {}

    def run(index):
        results[index] = pixels(generate(lora_studio, requests[index])[0])

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(requests)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(np.array_equal(results[index], alone[index]) for index in range(len(requests)))
    assert not np.array_equal(alone[0], alone[1])


@pytest.mark.parametrize("changes, message", [
    ({"lora": "squares-a", "model": "tiny-ddpm"}, "was trained on .*tiny-sd; choose that model"),
    ({"lora": "tiny-sd"}, "is a text-to-image model, not a LoRA"),
    ({"lora": "no-such-lora"}, "Unknown model 'no-such-lora'"),
    ({"lora": "squares-a", "lora_weight": 3}, "LoRA weight must be a number from 0 to 2"),
])
def test_bad_lora_requests_are_refused(lora_studio, changes, message):
    with pytest.raises(ValueError, match=message):
        generate(lora_studio, request(**changes))
