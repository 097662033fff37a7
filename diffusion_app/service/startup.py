"""Opening the studio the app and the CLI use. Kept apart from studio.py so that the Ray backend, which builds a
Studio in each replica, and the Studio never import each other: this module is the one place that knows both."""

from __future__ import annotations

import logging

from ..demo_model import ensure_offline_model
from ..hardware import configure_threads
from ..settings import Settings
from .studio import Studio

logger = logging.getLogger(__name__)


def open_studio(settings: Settings) -> Studio:
    """The studio the app and the CLI use: torch's threads set for the machine, and an offline model
    guaranteed, even on a bare checkout."""
    logger.info(configure_threads(settings.threads))
    logger.info("models run on %s in %s%s", settings.device, str(settings.dtype).removeprefix("torch."),
                ", compiled when they load" if settings.compile else "")
    ensure_offline_model([settings.models_dir, settings.local_models_dir], settings.local_models_dir)
    studio = Studio(settings)
    if settings.ray is not None:
        from .scale.ray_serving import RayGeneration  # Ray is an optional install

        studio.ray = RayGeneration(settings)
    return studio
