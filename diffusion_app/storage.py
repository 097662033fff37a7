"""Where a Hugging Face Space keeps what must survive a restart. A Space's own disk is ephemeral; its owner can
attach a storage bucket as a volume, mounted (as this app's docs/hosting.md says) at /data. When it is there,
jobs, trained models and the history go to /data/diffusion-studio and the Hugging Face cache to
/data/huggingface, unless DS_DATA_DIR or HF_HOME say otherwise."""

from __future__ import annotations

import os
from pathlib import Path

STORAGE_MOUNT = Path("/data")
REPO_ROOT = Path(__file__).resolve().parent.parent


def storage_mounted(environ=os.environ) -> bool:
    return bool(environ.get("SPACE_ID")) and STORAGE_MOUNT.is_dir() and os.access(STORAGE_MOUNT, os.W_OK)


def default_data_dir(environ=os.environ) -> Path:
    return STORAGE_MOUNT / "diffusion-studio" if storage_mounted(environ) else REPO_ROOT / "data"


def keep_hub_cache_in_storage() -> None:
    """Point HF_HOME into the mounted bucket. Call it before anything imports huggingface_hub, which reads
    HF_HOME once. (The image's preloaded models stay in the default cache: with a bucket, the first start
    downloads the default models into it once.)"""
    if storage_mounted() and "HF_HOME" not in os.environ:
        os.environ["HF_HOME"] = str(STORAGE_MOUNT / "huggingface")
