"""Load catalog entries with the libraries' own from_pretrained, onto the configured device."""

from __future__ import annotations

import logging

import torch
from diffusers import DiffusionPipeline
from diffusers.utils import logging as diffusers_logging

from ..catalog import CLASS_CONDITIONAL, ModelEntry
from .digits import ClassConditionalPipeline

logger = logging.getLogger(__name__)
diffusers_logging.disable_progress_bar()  # loading bars would fill the server log


class ModelUnavailableError(RuntimeError):
    """A model that cannot be loaded here; the message says what is missing and how to provide it."""


def unavailable_message(entry: ModelEntry, reason: str) -> str:
    if entry.is_local:
        return f"Model {entry.name!r} could not be loaded from {entry.source}: {reason}"
    return (
        f"Model {entry.name!r} is not available: it is not in the local Hugging Face cache and the hub "
        f"({entry.source}) could not be reached. Run the app once with network access to download it, "
        f"or download the folder elsewhere and add it with `python app.py --add-model {entry.name}=/path/to/folder` "
        f"(or copy it into models/)."
    )


def load_pipeline(entry: ModelEntry, device: str, dtype: torch.dtype, offline: bool = False) -> DiffusionPipeline:
    """from_pretrained + device/dtype placement; failures become ModelUnavailableError."""
    pipeline_class = ClassConditionalPipeline if entry.kind == CLASS_CONDITIONAL else DiffusionPipeline
    try:
        pipeline = pipeline_class.from_pretrained(entry.source, dtype=dtype, local_files_only=offline)
    except torch.OutOfMemoryError:
        raise
    except Exception as err:  # missing files, corrupt weights, bad configs: all mean "cannot load"
        logger.warning("loading %s failed: %s", entry.name, err)
        raise ModelUnavailableError(unavailable_message(entry, str(err).splitlines()[0])) from err
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(device)
