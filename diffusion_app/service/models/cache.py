"""PipelineCache: load each model once, share it between requests, evict least recently used."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

import torch


def module_bytes(pipeline: Any) -> int:
    """Bytes held by the parameters and buffers of every torch module of a pipeline (or a module)."""
    components = getattr(pipeline, "components", None) or {"model": pipeline}
    total = 0
    for component in components.values():
        if isinstance(component, torch.nn.Module):
            tensors = list(component.parameters()) + list(component.buffers())
            total += sum(t.numel() * t.element_size() for t in tensors)
    return total


@dataclass
class CachedModel:
    value: Any
    size_bytes: int
    load_seconds: float


class PipelineCache:
    """A thread-safe LRU cache of loaded pipelines within a count and/or byte budget.

    Concurrent first requests for the same key load it once (a lock per key); different keys
    load in parallel. The most recently used model is never evicted, even when it alone is over
    the byte budget, so a request always gets the model it asked for.
    """

    def __init__(
        self,
        loader: Callable[[str], Any],
        max_models: int | None = 3,
        max_bytes: int | None = None,
        size_of: Callable[[Any], int] = module_bytes,
    ):
        if max_models is not None and max_models < 1:
            raise ValueError("max_models must be at least 1")
        self._loader = loader
        self._size_of = size_of
        self.max_models = max_models
        self.max_bytes = max_bytes
        self._models: OrderedDict[str, CachedModel] = OrderedDict()
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self.hits = 0
        self.misses = 0
        self.evictions = 0

    def get(self, key: str) -> Any:
        if (cached := self._lookup(key)) is not None:
            return cached
        with self._key_lock(key):
            if (cached := self._lookup(key)) is not None:  # loaded by a concurrent request
                return cached
            start = time.perf_counter()
            value = self._loader(key)
            model = CachedModel(value, self._size_of(value), time.perf_counter() - start)
            with self._lock:
                self.misses += 1
                self._models[key] = model
                evicted = self._evict_over_budget()
        if evicted:
            release_memory()
        return value

    def peek(self, key: str) -> Any | None:
        """The loaded value, or None; never loads, and counts as no use."""
        with self._lock:
            model = self._models.get(key)
        return None if model is None else model.value

    def unload(self, key: str) -> bool:
        with self._lock:
            removed = self._models.pop(key, None) is not None
        if removed:
            release_memory()
        return removed

    def clear(self) -> None:
        with self._lock:
            self._models.clear()
        release_memory()

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._models

    def loaded(self) -> list[str]:
        with self._lock:
            return list(self._models)

    def total_bytes(self) -> int:
        with self._lock:
            return sum(m.size_bytes for m in self._models.values())

    def stats(self) -> dict:
        with self._lock:
            return {
                "hits": self.hits,
                "misses": self.misses,
                "evictions": self.evictions,
                "total_bytes": sum(m.size_bytes for m in self._models.values()),
                "models": {
                    key: {"bytes": m.size_bytes, "load_seconds": round(m.load_seconds, 3)}
                    for key, m in self._models.items()
                },
            }

    def _lookup(self, key: str) -> Any | None:
        with self._lock:
            model = self._models.get(key)
            if model is None:
                return None
            self._models.move_to_end(key)
            self.hits += 1
            return model.value

    def _key_lock(self, key: str) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())

    def _over_budget(self) -> bool:
        too_many = self.max_models is not None and len(self._models) > self.max_models
        too_big = self.max_bytes is not None and sum(m.size_bytes for m in self._models.values()) > self.max_bytes
        return too_many or too_big

    def _evict_over_budget(self) -> int:
        evicted = 0
        while len(self._models) > 1 and self._over_budget():
            self._models.popitem(last=False)
            evicted += 1
        self.evictions += evicted
        return evicted


def release_memory() -> None:
    """Return freed accelerator memory to the device once evicted models are unreferenced."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
