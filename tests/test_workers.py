"""Generation workers, one per device: which worker a run goes to, with simulated devices (two workers on the
CPU stand in for two GPUs), and that a run on either gives the images it gives alone."""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np
import pytest

from diffusion_app.service.models.cache import PipelineCache
from diffusion_app.service.generation.sampling import SamplingRequest, SamplingRun, sample
from diffusion_app.service.studio import Studio
from diffusion_app.service.models.workers import Worker, WorkerPool, serve_on_a_worker, worker_devices
from diffusion_app.settings import Settings
from diffusion_app.ui.common import generation_queue
from diffusion_app.ui.models_panel import cache_summary, loaded_models, models_table
from conftest import TINY_MODEL


def simulated_pool(devices=("cuda:0", "cuda:1", "cuda:2")) -> WorkerPool:
    return WorkerPool([Worker(device, PipelineCache(lambda name: object(), max_models=2)) for device in devices])


def test_a_run_goes_to_a_free_worker_that_holds_its_model():
    pool = simulated_pool()
    pool.workers[1].cache.get("cats")
    assert pool.take("cats") is pool.workers[1]
    assert pool.take("cats") is pool.workers[0]  # the holder is busy: another free worker (it will load it too)


def test_without_a_holder_the_least_recently_used_free_worker_is_taken():
    pool = simulated_pool()
    pool.give_back(pool.workers[2])  # used, then cuda:0 after it
    pool.give_back(pool.workers[0])
    assert pool.take("dogs") is pool.workers[1]  # never used since it was made
    assert pool.take("dogs") is pool.workers[2]


def test_when_every_worker_is_busy_a_run_waits_for_the_first_given_back():
    pool = simulated_pool(("cuda:0", "cuda:1"))
    first, second = pool.take("a"), pool.take("b")
    taken = []
    waiting = threading.Thread(target=lambda: taken.append(pool.take("c")))
    waiting.start()
    waiting.join(0.2)
    assert waiting.is_alive() and not taken
    pool.give_back(second)
    waiting.join(5)
    assert taken == [second] and first.busy


def test_devices_are_every_visible_gpu_or_what_ds_devices_names(monkeypatch):
    assert worker_devices(Settings(device="cpu")) == ["cpu"]
    monkeypatch.setattr("torch.cuda.device_count", lambda: 3)
    assert worker_devices(Settings(device="cuda")) == ["cuda:0", "cuda:1", "cuda:2"]
    assert worker_devices(Settings(device="cuda", zerogpu=True)) == ["cuda"]  # its one GPU lives inside calls
    assert worker_devices(Settings(device="cuda:1")) == ["cuda:1"]  # a device chosen by hand
    assert worker_devices(Settings(device="cuda", devices=("cuda:0", "cuda:2"))) == ["cuda:0", "cuda:2"]
    assert Settings.from_env({"DS_DEVICES": "cuda:0, cuda:2"}).devices == ("cuda:0", "cuda:2")


@pytest.fixture
def two_worker_studio(settings) -> Studio:
    return Studio(replace(settings, devices=("cpu", "cpu")))


def sampling_handler(studio: Studio):
    """A handler as the tabs write them: a generator that builds its run from the studio, then steps it."""

    def generate(model, seed):
        run = SamplingRun(studio, SamplingRequest(model, num_images=2, steps=4, seed=seed, scheduler="DDIM"))
        for _ in run:
            yield None
        yield run.images()

    return serve_on_a_worker(studio.pool, generate, model_of=lambda model, *_: model)


def last(steps):
    result = None
    for result in steps:
        pass
    return result


def pixels(images) -> np.ndarray:
    return np.stack([np.asarray(image) for image in images])


def test_concurrent_runs_each_get_a_worker_and_the_images_they_get_alone(two_worker_studio, studio):
    assert generation_queue(two_worker_studio)["concurrency_limit"] == 2
    handler = sampling_handler(two_worker_studio)
    results = {}
    started = [handler(model, 7) for model in (TINY_MODEL, "tiny-gray")]
    for steps in started:
        next(steps)  # both runs hold a worker now
    assert all(worker.busy for worker in two_worker_studio.pool.workers)
    threads = [threading.Thread(target=lambda s=steps, i=index: results.__setitem__(i, last(s)))
               for index, steps in enumerate(started)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [cache.loaded() for cache in two_worker_studio.caches] == [[TINY_MODEL], ["tiny-gray"]]
    for index, model in enumerate((TINY_MODEL, "tiny-gray")):
        alone, _ = sample(studio, SamplingRequest(model, num_images=2, steps=4, seed=7, scheduler="DDIM"))
        assert np.array_equal(pixels(results[index]), pixels(alone))
    assert not any(worker.busy for worker in two_worker_studio.pool.workers)
    # The Models tab shows both workers' models, and a line per worker.
    assert loaded_models(two_worker_studio) == [TINY_MODEL, "tiny-gray"]
    table = models_table(two_worker_studio).set_index("Model")
    assert table.loc[TINY_MODEL, "Loaded"] and table.loc["tiny-gray", "Loaded"]
    assert [line.split(":")[0] for line in cache_summary(two_worker_studio).split("  \n")] == ["cpu", "cpu"]


def test_a_stopped_run_gives_its_worker_back_and_the_next_run_of_its_model_goes_where_it_is_loaded(
        two_worker_studio):
    handler = sampling_handler(two_worker_studio)
    last(handler("tiny-gray", 0))  # loads tiny-gray on the least recently used worker
    holder = [worker for worker in two_worker_studio.pool.workers if "tiny-gray" in worker.cache]
    stopped = handler("tiny-gray", 1)
    next(stopped)
    assert [worker.busy for worker in two_worker_studio.pool.workers] == [worker is holder[0] for worker in
                                                                         two_worker_studio.pool.workers]
    stopped.close()  # Stop: the run ends between steps
    assert not any(worker.busy for worker in two_worker_studio.pool.workers)
    assert len(holder) == 1 and sum("tiny-gray" in cache for cache in two_worker_studio.caches) == 1
