"""The bundled models in models/: small fp16 files, the offline defaults, and loadable by plain diffusers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import DDPMPipeline
from safetensors import safe_open

from diffusion_app.catalog import CLASS_CONDITIONAL, UNCONDITIONAL, build_catalog
from diffusion_app.core.class_conditional import ClassConditionalPipeline
from diffusion_app.service.sampling import DEFAULT_CFG_SCALE, SamplingRequest, sample
from diffusion_app.service.studio import Studio
from diffusion_app.settings import Settings
from diffusion_app.training.packaged_data import mnist_arrays
from running_app import REPO_ROOT

BUNDLED = REPO_ROOT / "models"


@pytest.fixture(scope="module")
def studio(tmp_path_factory) -> Studio:
    """The app's service on models/ only, offline, as `python app.py` on a fresh machine."""
    return Studio(Settings(models_dir=BUNDLED, data_dir=tmp_path_factory.mktemp("data"), offline=True))


def test_bundled_models_are_the_offline_defaults():
    catalog = build_catalog([BUNDLED])
    assert catalog.default(UNCONDITIONAL) == "openmoji"
    assert catalog.default(CLASS_CONDITIONAL) == "digits"


@pytest.mark.parametrize("name", ["openmoji", "digits"])
def test_weights_are_small_fp16_safetensors(name):
    files = list((BUNDLED / name).rglob("*.safetensors"))
    assert files and not list((BUNDLED / name).rglob("*.bin"))
    for path in files:
        with safe_open(path, "pt") as weights:
            assert {weights.get_tensor(key).dtype for key in weights.keys()} == {torch.float16}
    assert sum(path.stat().st_size for path in files) < 20 * 2**20
    assert (BUNDLED / name / "training_config.json").is_file()


def test_openmoji_is_attributed():
    assert "CC BY-SA 4.0" in (BUNDLED / "openmoji" / "ATTRIBUTION.txt").read_text()


def test_openmoji_loads_with_plain_diffusers():
    pipeline = DDPMPipeline.from_pretrained(BUNDLED / "openmoji", dtype=torch.float32)
    images = pipeline(batch_size=1, num_inference_steps=5, generator=torch.manual_seed(0), output_type="np").images
    assert images.shape == (1, 32, 32, 3) and np.isfinite(images).all()


def test_openmoji_draws_emoji_on_a_white_background(studio):
    """Training emoji sit on white; a random-weight model's borders are mid-grey noise."""
    images, _ = sample(studio, SamplingRequest("openmoji", num_images=8, steps=20, seed=0, scheduler="DDIM"))
    pixels = np.stack([np.asarray(image, dtype=np.float32) for image in images])
    border = np.concatenate([pixels[:, :2].reshape(-1, 3), pixels[:, -2:].reshape(-1, 3)])
    assert np.median(border) > 200
    assert pixels[:, 8:24, 8:24].std() > 40  # something is drawn in the middle


def test_digits_round_trips_and_draws_the_requested_digits(studio):
    """Each generated digit is closer to the mean real image of its own digit than to most others."""
    pipeline = ClassConditionalPipeline.from_pretrained(BUNDLED / "digits", dtype=torch.float32)
    assert pipeline.class_names == [str(digit) for digit in range(10)]
    assert pipeline.null_class_label == 10  # trained with class dropout: the Digits tab's CFG scale works

    real, labels = mnist_arrays()
    centroids = np.stack([real[labels == digit].mean(0) for digit in range(10)]).reshape(10, -1)
    request = SamplingRequest("digits", num_images=4, steps=20, seed=0, scheduler="DDIM", classes=tuple(range(10)),
                              guidance_scale=DEFAULT_CFG_SCALE)
    images, _ = sample(studio, request)
    pixels = np.stack([np.asarray(image, dtype=np.float32) for image in images])
    border = np.concatenate([pixels[:, :3].ravel(), pixels[:, -3:].ravel(), pixels[:, :, :3].ravel()])
    assert np.median(border) < 10  # black, as in MNIST, not a grey haze
    generated = pixels.reshape(len(images), -1)
    correlation = np.corrcoef(generated, centroids)[:len(images), len(images):]
    rank_of_requested = (correlation > correlation[np.arange(len(images)), request.labels][:, None]).sum(1)
    assert np.mean(rank_of_requested < 3) >= 0.8  # chance: 0.3
