import threading
import time

import pytest

from diffusion_app.service.models.cache import PipelineCache, module_bytes


class CountingLoader:
    def __init__(self, delay: float = 0.0):
        self.calls: list[str] = []
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self, key):
        with self._lock:
            self.calls.append(key)
        time.sleep(self.delay)
        return {"model": key}


def test_loads_once_and_reuses():
    loader = CountingLoader()
    cache = PipelineCache(loader, max_models=2)
    first = cache.get("a")
    assert cache.get("a") is first
    assert loader.calls == ["a"]
    stats = cache.stats()
    assert (stats["hits"], stats["misses"]) == (1, 1)
    assert stats["models"]["a"]["load_seconds"] >= 0


def test_evicts_least_recently_used_by_count():
    loader = CountingLoader()
    cache = PipelineCache(loader, max_models=2)
    cache.get("a")
    cache.get("b")
    cache.get("a")  # b is now the least recently used
    cache.get("c")
    assert cache.loaded() == ["a", "c"]
    assert cache.stats()["evictions"] == 1
    cache.get("b")
    assert loader.calls == ["a", "b", "c", "b"]


def test_evicts_by_byte_budget_but_keeps_the_newest():
    sizes = {"small": 10, "medium": 30, "huge": 500}
    cache = PipelineCache(lambda key: key, max_models=None, max_bytes=50, size_of=lambda value: sizes[value])
    cache.get("small")
    cache.get("medium")
    assert cache.total_bytes() == 40
    cache.get("huge")  # alone over budget: everything else goes, the requested model stays
    assert cache.loaded() == ["huge"]
    cache.get("small")
    assert cache.loaded() == ["small"]


def test_concurrent_first_requests_load_once():
    loader = CountingLoader(delay=0.3)
    cache = PipelineCache(loader, max_models=3)
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("shared"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loader.calls == ["shared"]
    assert all(result is results[0] for result in results)
    assert cache.stats()["misses"] == 1 and cache.stats()["hits"] == 7


def test_different_models_load_in_parallel():
    entered = threading.Barrier(2, timeout=5)

    def loader(key):
        entered.wait()  # deadlocks (BrokenBarrierError) if loads were serialised
        return key

    cache = PipelineCache(loader, max_models=3)
    threads = [threading.Thread(target=cache.get, args=(key,)) for key in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(cache.loaded()) == ["a", "b"]


def test_failed_load_is_not_cached():
    attempts = []

    def flaky(key):
        attempts.append(key)
        if len(attempts) == 1:
            raise OSError("disk hiccup")
        return key

    cache = PipelineCache(flaky)
    with pytest.raises(OSError):
        cache.get("a")
    assert "a" not in cache
    assert cache.get("a") == "a"


def test_unload_and_clear():
    cache = PipelineCache(CountingLoader())
    cache.get("a")
    cache.get("b")
    assert cache.unload("a") is True
    assert cache.unload("a") is False
    assert cache.loaded() == ["b"]
    cache.clear()
    assert cache.loaded() == []


def test_rejects_empty_budget():
    with pytest.raises(ValueError):
        PipelineCache(lambda key: key, max_models=0)


def test_module_bytes_counts_pipeline_weights(studio):
    pipeline = studio.pipeline("tiny-ddpm", "unconditional")
    expected = sum(p.numel() * p.element_size() for p in pipeline.unet.parameters())
    assert module_bytes(pipeline) >= expected > 0
    assert studio.cache.stats()["models"]["tiny-ddpm"]["bytes"] == module_bytes(pipeline)
