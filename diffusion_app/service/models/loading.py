"""Load catalog entries with the libraries' own from_pretrained, onto the configured device."""

from __future__ import annotations

import logging

import torch
from diffusers import AutoencoderTiny, AutoPipelineForText2Image, DiffusionPipeline
from diffusers.utils import logging as diffusers_logging

from ...catalog import CLASS_CONDITIONAL, TEXT_TO_IMAGE, ModelEntry
from ...settings import MemorySavers
from .compilation import compile_unet, uses_channels_last
from ...core.class_conditional import ClassConditionalPipeline

logger = logging.getLogger(__name__)
diffusers_logging.disable_progress_bar()  # loading bars would fill the server log


class ModelUnavailableError(RuntimeError):
    """A model that cannot be loaded here; the message says what is missing and how to provide it."""


MIRROR_HINT = "Where the hub is reached through a mirror, set HF_ENDPOINT (e.g. https://hf-mirror.com) before starting."


def unavailable_message(entry: ModelEntry, reason: str) -> str:
    if entry.is_local:
        return f"Model {entry.name!r} could not be loaded from {entry.source}: {reason}"
    return (
        f"Model {entry.name!r} is not available: it is not in the local Hugging Face cache and the hub "
        f"({entry.source}) could not be reached. Run the app once with network access to download it, "
        f"or download the folder elsewhere and add it with `python app.py --add-model {entry.name}=/path/to/folder` "
        f"(or copy it into models/). {MIRROR_HINT}"
    )


PIPELINE_CLASSES = {CLASS_CONDITIONAL: ClassConditionalPipeline, TEXT_TO_IMAGE: AutoPipelineForText2Image}


def load_pipeline(entry: ModelEntry, device: str, dtype: torch.dtype, offline: bool = False,
                  memory: MemorySavers = MemorySavers(), compile: bool = False) -> DiffusionPipeline:
    """from_pretrained + memory savers + device/dtype placement (+ compilation); failures become
    ModelUnavailableError."""
    pipeline_class = PIPELINE_CLASSES.get(entry.kind, DiffusionPipeline)
    try:
        pipeline = pipeline_class.from_pretrained(entry.source, dtype=dtype, local_files_only=offline)
    except torch.OutOfMemoryError:
        raise
    except Exception as err:  # missing files, corrupt weights, bad configs: all mean "cannot load"
        logger.warning("loading %s failed: %s", entry.name, err)
        raise ModelUnavailableError(unavailable_message(entry, str(err).splitlines()[0])) from err
    pipeline.set_progress_bar_config(disable=True)
    pipeline = place(pipeline, device, memory)
    if uses_channels_last(device, compile):
        pipeline.unet.to(memory_format=torch.channels_last)
    if compile:
        compile_unet(pipeline, device)
    return pipeline


def load_tiny_autoencoder(entry: ModelEntry, device: str, dtype: torch.dtype, offline: bool = False) -> AutoencoderTiny:
    """A tiny autoencoder (TAESD) on the device, in the pipelines' dtype; failures become ModelUnavailableError."""
    try:
        autoencoder = AutoencoderTiny.from_pretrained(entry.source, torch_dtype=dtype, local_files_only=offline)
    except Exception as err:
        logger.warning("loading %s failed: %s", entry.name, err)
        raise ModelUnavailableError(unavailable_message(entry, str(err).splitlines()[0])) from err
    return autoencoder.eval().requires_grad_(False).to(device)


def place(pipeline: DiffusionPipeline, device: str, memory: MemorySavers) -> DiffusionPipeline:
    """Put the pipeline on the device, with the memory savers asked for. Attention runs in PyTorch's
    scaled_dot_product_attention (diffusers' default processor) unless attention slicing replaces it."""
    if memory.attention_slicing:
        pipeline.enable_attention_slicing()
    if (vae := getattr(pipeline, "vae", None)) is not None:
        if memory.vae_slicing:
            vae.enable_slicing()
        if memory.vae_tiling:
            vae.enable_tiling()
    if memory.cpu_offload:
        pipeline.enable_model_cpu_offload(device=device)
        return pipeline
    return pipeline.to(device)
