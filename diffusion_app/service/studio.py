"""Studio: the settings, the model catalog and the pipeline cache that every request shares."""

from __future__ import annotations

import logging

from ..catalog import Catalog, build_catalog
from ..demo_model import ensure_offline_model
from ..hardware import configure_threads
from ..settings import Settings
from .cache import PipelineCache
from .clip_models import CLIP_KEY_PREFIX, ClipSpec, LoadedClip, load_clip
from .loading import load_pipeline

logger = logging.getLogger(__name__)


class Studio:
    def __init__(self, settings: Settings, catalog: Catalog | None = None):
        self.settings = settings
        self.catalog = catalog or build_catalog(
            [settings.models_dir, settings.local_models_dir], settings.extra_models
        )
        self.cache = PipelineCache(self._load, settings.cache_max_models, settings.cache_max_bytes)

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

    def _load(self, name: str):
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
