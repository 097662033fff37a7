"""The Ray backend for generation: a Ray Serve deployment whose replicas each hold a Studio, with its pipeline
cache, on a GPU of their own; the Gradio handlers reach it through a deployment handle.

The seam is `Studio.start(make_run, *args)`. Without Ray it makes the run (SamplingRun, GuidedRun,
TextToImageRun, ...) in this process. With DS_RAY_ADDRESS it returns a RemoteRun: a replica makes the same run
from the same arguments and streams back every step together with the run's state (timing, losses, and at the
end its images), so a handler reads a RemoteRun as it reads a local run. Closing the iteration (Stop) cancels
the remote request. A replica runs one request at a time, as a local worker does, and the generation queue
lets in as many at once as there can be replicas.

Every node must see the same models dir and data dir (a shared filesystem) and run the same install: replicas
load models and LoRA adapters from those folders.
"""

from __future__ import annotations

import logging
from dataclasses import replace

import torch

from ...catalog import Catalog
from ...hardware import configure_threads, default_dtype
from ...ray_settings import RaySettings
from ...settings import Settings
from .ray_cluster import connect, gpus_to_ask
from ..studio import Studio

logger = logging.getLogger(__name__)

APP_NAME = "diffusion-studio"
DEPLOYMENT_NAME = "generation"


def replica_settings(settings: Settings) -> Settings:
    """The app's settings on a replica: the device is the replica's own (Ray sets CUDA_VISIBLE_DEVICES to the
    GPUs it was given), in the app's dtype when that device is the app's kind, else in the device's default."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = settings.dtype if settings.device.split(":")[0] == device else default_dtype(device)
    return replace(settings, device=device, devices=(), dtype=dtype, ray=None)


class GenerationReplica:
    """One Serve replica: a Studio on the replica's device, making and running the runs the front end starts."""

    def __init__(self, settings: Settings, threads: int | None):
        logger.info(configure_threads(threads))
        self.studio = Studio(replica_settings(settings))

    def run(self, entries: list, make_run, args: tuple, kwargs: dict):
        """Yield (None, run) once it is made, (step, run) after every step, and (None, run) when it ends. The
        catalog is the front end's, sent with each request, so models it added (finished jobs) are found here."""
        self.studio.catalog = Catalog(entries)
        run = make_run(self.studio, *args, **kwargs)
        yield None, run
        for step in run:
            yield step, run
        yield None, run


class RemoteRun:
    """A run in a replica, read as if it ran here: iterate it for its steps; its attributes and methods are those
    of the run's latest state (after the last step: its images)."""

    def __init__(self, responses):
        self._responses = responses
        self._finished = False
        _, self._state = self._next()  # the replica's error, if the run cannot be made, is raised here

    def _next(self):
        from ray.exceptions import RayTaskError

        try:
            return next(self._responses)
        except StopIteration:
            self._finished = True
            raise
        except RayTaskError as err:  # the replica's own exception, not Ray's wrapper with its traceback
            self._finished = True
            raise (err.cause if isinstance(err.cause, Exception) else err) from None

    def __iter__(self):
        try:
            while True:
                try:
                    step, self._state = self._next()
                except StopIteration:
                    return
                if step is not None:
                    yield step
        finally:
            if not self._finished:  # Stop: the replica ends the run after its current step
                self._responses.cancel()

    def __getattr__(self, name: str):
        return getattr(self._state, name)


class RayGeneration:
    """The deployment, started on the cluster when the app starts, and the handle its requests go through."""

    def __init__(self, settings: Settings):
        from ray import serve

        self.ray_settings: RaySettings = settings.ray
        connect(self.ray_settings)
        gpus = gpus_to_ask(self.ray_settings.gpus_per_replica)
        replicas = ({"num_replicas": self.ray_settings.min_replicas}
                    if self.ray_settings.min_replicas == self.ray_settings.max_replicas else
                    {"autoscaling_config": {"min_replicas": self.ray_settings.min_replicas,
                                            "max_replicas": self.ray_settings.max_replicas}})
        deployment = serve.deployment(GenerationReplica, name=DEPLOYMENT_NAME, max_ongoing_requests=1,
                                      ray_actor_options={"num_gpus": gpus,
                                                         "num_cpus": self.ray_settings.cpus_per_replica},
                                      **replicas)
        serve.start(http_options={"location": "NoServer"})  # handles only: no HTTP proxy on the nodes
        # On CPUs a replica computes with the CPUs it holds (DS_THREADS overrides); on a GPU, the default.
        threads = settings.threads or (max(1, int(self.ray_settings.cpus_per_replica)) if not gpus else None)
        self.handle = serve.run(deployment.bind(settings, threads), name=APP_NAME, route_prefix=None)
        logger.info("generation runs on Ray at %s: %s replica(s), %g GPU and %g CPU each",
                    self.ray_settings.address, replicas, gpus, self.ray_settings.cpus_per_replica)

    @property
    def concurrency(self) -> int:
        """Requests that can run at once: one per replica, at the most replicas there can be."""
        return self.ray_settings.max_replicas

    def start(self, catalog: Catalog, make_run, *args, **kwargs) -> RemoteRun:
        responses = self.handle.options(stream=True).run.remote(catalog.entries(), make_run, args, kwargs)
        return RemoteRun(responses)
