"""Studio: the settings, the model catalog and the pipeline cache that every request shares."""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from ..catalog import (CLASS_CONDITIONAL, TEXT_TO_IMAGE, TINY_AUTOENCODER, UNCONDITIONAL, Catalog, UnknownModelError,
                       build_catalog)
from ..settings import Settings
from .models.cache import PipelineCache
from .models.clip_models import CLIP_KEY_PREFIX, LOCAL_WEIGHTS, ClipSpec, LoadedClip, clip_folders, load_clip
from .history import History
from .models.loading import ModelUnavailableError, load_pipeline, load_tiny_autoencoder
from .visitors import Visitor
from .models.workers import Worker, WorkerPool, worker_devices

logger = logging.getLogger(__name__)


class Studio:
    def __init__(self, settings: Settings, catalog: Catalog | None = None):
        self.settings = settings
        self.catalog = catalog or build_catalog(
            [settings.models_dir, settings.local_models_dir], settings.extra_models
        )
        self.pool = WorkerPool([
            Worker(device, PipelineCache(functools.partial(self._load, device=device), settings.cache_max_models,
                                         settings.cache_max_bytes))
            for device in worker_devices(settings)
        ])
        self.loading_closed = False  # on ZeroGPU, after preload(): a load inside a GPU call would vanish with it
        self._history: History | None = None
        self.ray = None  # a RayGeneration when generation runs on a Ray cluster (open_studio)

    def start(self, make_run, *args, **kwargs):
        """A run made by `make_run(studio, *args, **kwargs)` (SamplingRun, GuidedRun, TextToImageRun, ...): in this
        process, or in a Ray Serve replica when the app runs on Ray (ray_serving.py). The tabs start every run
        here, so they work the same whichever backend runs it."""
        if self.ray is not None:
            return self.ray.start(self.catalog, make_run, *args, **kwargs)
        return make_run(self, *args, **kwargs)

    @property
    def cache(self) -> PipelineCache:
        """The pipeline cache of the worker serving the current run (workers.py); with one device, the only one."""
        return self.pool.serving().cache

    @property
    def caches(self) -> list[PipelineCache]:
        """Every worker's cache: what unloading a model, or listing what is loaded, goes through."""
        return [worker.cache for worker in self.pool.workers]

    @property
    def history(self) -> History:
        """Every generated image with its parameters, under the data dir (opened on first use)."""
        if self._history is None:
            self._history = History(self.settings.data_dir / "history", self.settings.history_max_mb * 2**20)
        return self._history

    def pipeline(self, name: str, kind: str):
        """The cached pipeline of a catalog model, checked to be of the kind the caller can use."""
        entry = self.catalog.get(name)
        if entry.kind != kind:
            suitable = ", ".join(self.model_names(kind)) or "none yet"
            raise ValueError(f"Model {name!r} is of kind {entry.kind!r}; this needs kind {kind!r} ({suitable}).")
        return self.cache.get(name)

    def model_names(self, kind: str | None = None, visitor: Visitor | None = None) -> list[str]:
        """The catalog's models a visitor may list and use. On a public server a model a visitor's job trained is
        theirs (and its operators'), as the job is; everyone gets the rest. A private server lists every model."""
        return [entry.name for entry in self.catalog.entries(kind) if not self.settings.public or entry.owner is None
                or (visitor is not None and visitor.owns(entry.owner))]

    def listed_or_added(self, name: str, kind: str):
        """The catalog entry of a model a visitor chose; on a private server also an unlisted hub id or local
        folder, added to the catalog. A public server serves its listed models only: a typed hub id could fill
        its disk with downloads, and a path could reach any folder on it."""
        if not self.settings.public:
            return self.catalog.find_or_add(name, kind)
        try:
            return self.catalog.get(name)
        except UnknownModelError:
            raise UnknownModelError(f"Unknown model {name!r}: this public server serves its listed models only "
                                    f"({', '.join(self.model_names(kind)) or 'none'}); its operator can add "
                                    "others with DS_MODELS.") from None

    def clip_folders(self) -> dict[str, Path]:
        """The CLIP model folders among the models (the bundled emoji-clip), by name."""
        return clip_folders([self.settings.models_dir, self.settings.local_models_dir])

    def offered_clip_specs(self) -> list[ClipSpec]:
        """The CLIP models listed first (the default first), and the only ones a public server offers: the CLIP
        model folders, then open_clip's ViT-B-32 with OpenAI's weights."""
        return [*(ClipSpec(name, LOCAL_WEIGHTS) for name in self.clip_folders()), ClipSpec().validated()]

    def clip(self, spec: ClipSpec) -> LoadedClip:
        """A cached open_clip model; CLIP models share the cache and its budget with the pipelines. A public
        server loads only those it offers, and answers the same for every other name, file or not."""
        spec = spec.validated()
        if self.settings.public and spec not in self.offered_clip_specs():
            offered = ", ".join(offered.label for offered in self.offered_clip_specs())
            raise ValueError(f"This public server offers these CLIP models only: {offered}.")
        return self.cache.get(spec.cache_key)

    def preload(self, names: list[str]) -> None:
        """Load these models now, then close loading. A ZeroGPU call runs in a forked process: a model it
        loaded would vanish when it returns, so models go onto cuda at start-up and stay in the cache."""
        for cache in self.caches:
            cache.max_models = max(cache.max_models or 0, len(names))
            cache.max_bytes = None
            for name in names:
                try:
                    cache.get(name)
                    logger.info("preloaded %s", name)
                except ModelUnavailableError as err:  # the app still starts; requests for it get the message below
                    logger.warning("could not preload %s: %s", name, err)
        self.loading_closed = True

    def default_models(self) -> list[str]:
        """What a ZeroGPU Space loads at start-up: each generation tab's default model, the hub text-to-image
        models (their GPU is what ZeroGPU is for; the README header preloads their files), the tiny autoencoders
        of those text-to-image models, and DS_PRELOAD."""
        defaults = [self.catalog.default(kind) for kind in (UNCONDITIONAL, CLASS_CONDITIONAL, TEXT_TO_IMAGE)]
        hub = [entry.name for entry in self.catalog.entries(TEXT_TO_IMAGE) if not entry.is_local]
        text_to_image = {self.catalog.get(name).source for name in [defaults[2], *hub] if name}
        hub += [entry.name for source in text_to_image for entry in self.catalog.tiny_autoencoders(source)]
        clip = self.offered_clip_specs()[0].cache_key  # CLIP guidance's default
        return list(dict.fromkeys(name for name in [*defaults, *hub, clip, *self.settings.preload] if name))

    def sample_pixels(self, name: str, default: int = 32 * 32) -> int:
        """Pixels of a loaded model's sample (its latents', for text to image); the default when not loaded."""
        pipeline = self.cache.peek(name)
        unet = getattr(pipeline, "unet", None)
        if unet is None:
            return default
        size = unet.config.sample_size
        return size * size if isinstance(size, int) else size[0] * size[1]

    def _load(self, name: str, device: str):
        if self.loading_closed:
            loaded = ", ".join(key for key in self.cache.loaded() if not key.startswith(CLIP_KEY_PREFIX))
            raise ModelUnavailableError(
                f"{name.removeprefix(CLIP_KEY_PREFIX)!r} is not loaded on this server. On ZeroGPU models load only "
                f"at start-up (each tab's default, and those the operator lists in DS_PRELOAD): choose one of "
                f"{loaded}.")
        if name.startswith(CLIP_KEY_PREFIX):
            return load_clip(ClipSpec.from_cache_key(name), device, self.settings.offline,
                             self.settings.clip_configs, self.clip_folders())
        entry = self.catalog.get(name)
        if entry.kind == TINY_AUTOENCODER:
            return load_tiny_autoencoder(entry, device, self.settings.dtype, self.settings.offline)
        return load_pipeline(entry, device, self.settings.dtype, self.settings.offline, self.settings.memory,
                             self.settings.compile)
