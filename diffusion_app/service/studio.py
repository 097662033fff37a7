"""Studio: the settings, the model catalog and the pipeline cache that every request shares."""

from __future__ import annotations

import logging

from ..catalog import CLASS_CONDITIONAL, TEXT_TO_IMAGE, UNCONDITIONAL, Catalog, build_catalog
from ..demo_model import ensure_offline_model
from ..hardware import configure_threads
from ..settings import Settings
from .cache import PipelineCache
from .clip_models import CLIP_KEY_PREFIX, ClipSpec, LoadedClip, load_clip
from .loading import ModelUnavailableError, load_pipeline

logger = logging.getLogger(__name__)


class Studio:
    def __init__(self, settings: Settings, catalog: Catalog | None = None):
        self.settings = settings
        self.catalog = catalog or build_catalog(
            [settings.models_dir, settings.local_models_dir], settings.extra_models
        )
        self.cache = PipelineCache(self._load, settings.cache_max_models, settings.cache_max_bytes)
        self.loading_closed = False  # on ZeroGPU, after preload(): a load inside a GPU call would vanish with it

    def pipeline(self, name: str, kind: str):
        """The cached pipeline of a catalog model, checked to be of the kind the caller can use."""
        entry = self.catalog.get(name)
        if entry.kind != kind:
            suitable = ", ".join(self.catalog.names(kind)) or "none yet"
            raise ValueError(f"Model {name!r} is of kind {entry.kind!r}; this needs kind {kind!r} ({suitable}).")
        return self.cache.get(name)

    def clip(self, spec: ClipSpec) -> LoadedClip:
        """A cached open_clip model; CLIP models share the cache and its budget with the pipelines."""
        return self.cache.get(spec.validated().cache_key)

    def preload(self, names: list[str]) -> None:
        """Load these models now, then close loading. A ZeroGPU call runs in a forked process: a model it
        loaded would vanish when it returns, so models go onto cuda at start-up and stay in the cache."""
        self.cache.max_models = max(self.cache.max_models or 0, len(names))
        self.cache.max_bytes = None
        for name in names:
            self.cache.get(name)
            logger.info("preloaded %s", name)
        self.loading_closed = True

    def default_models(self) -> list[str]:
        """Each generation tab's default model, and the operator's DS_PRELOAD list."""
        defaults = [self.catalog.default(kind) for kind in (UNCONDITIONAL, CLASS_CONDITIONAL, TEXT_TO_IMAGE)]
        return list(dict.fromkeys(name for name in [*defaults, *self.settings.preload] if name))

    def sample_pixels(self, name: str, default: int = 32 * 32) -> int:
        """Pixels of a loaded model's sample (its latents', for text to image); the default when not loaded."""
        pipeline = self.cache.peek(name)
        unet = getattr(pipeline, "unet", None)
        if unet is None:
            return default
        size = unet.config.sample_size
        return size * size if isinstance(size, int) else size[0] * size[1]

    def _load(self, name: str):
        if self.loading_closed:
            loaded = ", ".join(key for key in self.cache.loaded() if not key.startswith(CLIP_KEY_PREFIX))
            raise ModelUnavailableError(
                f"{name.removeprefix(CLIP_KEY_PREFIX)!r} is not loaded on this server. On ZeroGPU models load only "
                f"at start-up (each tab's default, and those the operator lists in DS_PRELOAD): choose one of "
                f"{loaded}.")
        if name.startswith(CLIP_KEY_PREFIX):
            return load_clip(ClipSpec.from_cache_key(name), self.settings.device, self.settings.offline,
                             self.settings.clip_configs)
        entry = self.catalog.get(name)
        return load_pipeline(entry, self.settings.device, self.settings.dtype, self.settings.offline,
                             self.settings.memory, self.settings.compile)


def open_studio(settings: Settings) -> Studio:
    """The studio the app and the CLI use: torch's threads set for the machine, and an offline model
    guaranteed, even on a bare checkout."""
    logger.info(configure_threads(settings.threads))
    logger.info("models run on %s in %s%s", settings.device, str(settings.dtype).removeprefix("torch."),
                ", compiled when they load" if settings.compile else "")
    ensure_offline_model([settings.models_dir, settings.local_models_dir], settings.local_models_dir)
    return Studio(settings)
