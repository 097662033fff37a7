"""The cache keeps memory bounded: switching between models many times does not grow the process."""

import gc

import psutil
import pytest

from diffusion_app.catalog import UNCONDITIONAL
from diffusion_app.demo_model import build_ddpm_pipeline
from diffusion_app.service.generation.sampling import SamplingRequest, sample
from diffusion_app.service.studio import Studio
from diffusion_app.settings import Settings

MODEL_COUNT = 6
SWITCHES = 20


@pytest.fixture(scope="module")
def big_models_dir(tmp_path_factory):
    """Models of ~20 MB each, so keeping them all would show clearly in the process size."""
    folder = tmp_path_factory.mktemp("big-models")
    for index in range(MODEL_COUNT):
        build_ddpm_pipeline(folder / f"model-{index}", sample_size=8, block_out_channels=(96, 192), seed=index)
    return folder


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def test_switching_models_twenty_times_stays_within_the_cache_budget(big_models_dir, tmp_path):
    studio = Studio(Settings(models_dir=big_models_dir, data_dir=tmp_path, offline=True, cache_max_models=2))
    names = studio.catalog.names(UNCONDITIONAL)[:MODEL_COUNT]
    sample(studio, SamplingRequest(names[0], num_images=1, steps=1, seed=0))
    model_mb = studio.cache.stats()["total_bytes"] / 2**20
    after_first_model = rss_mb()
    for switch in range(SWITCHES):
        sample(studio, SamplingRequest(names[switch % MODEL_COUNT], num_images=1, steps=1, seed=switch))
    growth = rss_mb() - after_first_model

    assert len(studio.cache.loaded()) == 2 and studio.cache.stats()["evictions"] >= SWITCHES - 2
    # The budget allows one more model than at the start; without eviction all the others would stay.
    assert growth < 3 * model_mb, f"process grew {growth:.0f} MB over {SWITCHES} switches (model: {model_mb:.0f} MB)"
