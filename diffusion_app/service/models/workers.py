"""Generation workers: one per accelerator, each with its own pipeline cache (and its budget) on its own device.

A run takes a free worker for as long as it runs: one that already holds its model if any is free, else the
free worker used least recently, so that models spread over the devices; while every worker is busy it waits.
The generation queue lets in as many runs at a time as there are workers (ui/common.generation_queue).

With one device, a CPU or a single GPU, there is one worker, whose cache is the studio's, and runs go straight
to it. The worker serving a run is found through a context variable that `serve_on_a_worker` sets around each
step of the run (Gradio may resume a generator in another thread), so service code asks `studio.cache` as it
always did and gets its worker's cache.
"""

from __future__ import annotations

import functools
import threading
import time
from contextvars import ContextVar
from dataclasses import dataclass, field

import torch

from ...settings import Settings
from .cache import PipelineCache

SERVING: ContextVar["Worker | None"] = ContextVar("serving_worker", default=None)


@dataclass(eq=False)
class Worker:
    device: str
    cache: PipelineCache
    busy: bool = False
    last_used: float = field(default_factory=time.monotonic)


def worker_devices(settings: Settings) -> list[str]:
    """DS_DEVICES when set; else every visible GPU when the app runs on CUDA (not on ZeroGPU, whose one GPU
    exists only inside its calls); else the one device the app runs on."""
    if settings.devices:
        return list(settings.devices)
    if settings.device == "cuda" and not settings.zerogpu and torch.cuda.device_count() > 1:
        return [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    return [settings.device]


class WorkerPool:
    def __init__(self, workers: list[Worker]):
        self.workers = workers
        self._changed = threading.Condition()

    def take(self, model: str | None) -> Worker:
        """A free worker for a run of this model (waiting until one is free): one holding the model if any,
        else the one used least recently."""
        with self._changed:
            while True:
                free = [worker for worker in self.workers if not worker.busy]
                if free:
                    holding = [worker for worker in free if model is not None and model in worker.cache]
                    worker = holding[0] if holding else min(free, key=lambda candidate: candidate.last_used)
                    worker.busy = True
                    return worker
                self._changed.wait()

    def give_back(self, worker: Worker) -> None:
        with self._changed:
            worker.busy = False
            worker.last_used = time.monotonic()
            self._changed.notify()

    def serving(self) -> Worker:
        """The worker the current run was given; the first outside a run (the CLI, tests, benchmarks)."""
        worker = SERVING.get()
        return worker if worker in self.workers else self.workers[0]  # workers compare by identity (eq=False)


def serve_on_a_worker(pool: WorkerPool, handler, model_of):
    """Run a generator handler on a worker taken for the model `model_of(*args, **kwargs)` names, given back
    when the run ends, fails or is stopped."""

    @functools.wraps(handler)
    def wrapper(*args, **kwargs):
        worker = pool.take(model_of(*args, **kwargs))
        steps = handler(*args, **kwargs)
        try:
            while True:
                token = SERVING.set(worker)
                try:
                    step = next(steps)
                except StopIteration:
                    return
                finally:
                    SERVING.reset(token)
                yield step
        finally:
            steps.close()  # a stopped run stops its handler now, not when it is garbage-collected
            pool.give_back(worker)

    return wrapper
