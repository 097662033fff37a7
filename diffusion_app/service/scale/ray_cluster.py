"""Joining the Ray cluster, once per process, for the generation replicas and the training jobs alike."""

from __future__ import annotations

import logging

from ...ray_settings import RaySettings
from ...settings import REPO_ROOT

logger = logging.getLogger(__name__)

_dashboard_url: str | None = None


def connect(ray_settings: RaySettings) -> None:
    """Join the cluster at the settings' address ("local" starts one in this process). Its workers import this
    project from the path this process does (every node runs the same install)."""
    global _dashboard_url
    import ray

    if not ray.is_initialized():
        context = ray.init(address=ray_settings.address, logging_level=logging.WARNING,
                           runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}})
        _dashboard_url = context.dashboard_url
        logger.info("joined the Ray cluster at %s; its dashboard: %s", ray_settings.address,
                    _dashboard_url or "none")


def dashboard_url() -> str:
    """The dashboard of the cluster `connect` joined: where jobs are submitted."""
    if not _dashboard_url:
        raise RuntimeError("The Ray cluster runs no dashboard, which job submission needs: install ray[default] "
                           "on the head node and start it with its dashboard.")
    return _dashboard_url if "://" in _dashboard_url else f"http://{_dashboard_url}"


def gpus_to_ask(asked: float | None) -> float:
    """The GPUs a replica or job asks for: what the settings say, else 1 on a cluster with GPUs and 0 without."""
    if asked is not None:
        return asked
    import ray

    return 1 if ray.cluster_resources().get("GPU", 0) else 0
