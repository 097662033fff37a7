"""open_clip models for CLIP guidance, loaded into the pipeline cache under keys `clip:<architecture>/<weights>`.

An architecture is an open_clip model name (`open_clip.list_models()`, plus configs registered with
DS_CLIP_CONFIGS); the weights are one of its pretrained tags (downloaded from the hub on first use)
or the path of a local checkpoint file (works offline). A CLIP model folder in models/ (open_clip's
local-dir format: open_clip_config.json and its weights, as the bundled emoji-clip) is an architecture of its
own, named after the folder, with the weights `local`: the ones in the folder.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import constants, try_to_load_from_cache

import open_clip
from open_clip.constants import HF_SAFE_WEIGHTS_NAME, HF_WEIGHTS_NAME
from .loading import MIRROR_HINT, ModelUnavailableError

logger = logging.getLogger(__name__)

CLIP_KEY_PREFIX = "clip:"
LOCAL_WEIGHTS = "local"  # the weights of a CLIP model folder
CLIP_FOLDER_CONFIG = "open_clip_config.json"
DEFAULT_CLIP_ARCHITECTURE = "ViT-B-32"
DEFAULT_CLIP_WEIGHTS = "openai"
SUGGESTED_ARCHITECTURES = ("ViT-B-32", "ViT-B-32-quickgelu", "ViT-B-16", "ViT-L-14", "RN50")

_registered_configs: set[Path] = set()
_registry_lock = threading.Lock()


@dataclass(frozen=True)
class ClipSpec:
    architecture: str = DEFAULT_CLIP_ARCHITECTURE
    weights: str = DEFAULT_CLIP_WEIGHTS  # a pretrained tag of the architecture, or a checkpoint file

    def validated(self) -> "ClipSpec":
        architecture = str(self.architecture or "").strip().replace("/", "-")  # open_clip reads ViT-B/32 as ViT-B-32
        weights = str(self.weights or "").strip()
        if not architecture or not weights:
            raise ValueError("Choose a CLIP model (an open_clip name such as ViT-B-32) and its weights "
                             "(a pretrained tag such as openai, or the path of a checkpoint file).")
        if (path := Path(weights).expanduser()).is_file():
            weights = str(path.resolve())
        return replace(self, architecture=architecture, weights=weights)

    @property
    def cache_key(self) -> str:
        return f"{CLIP_KEY_PREFIX}{self.architecture}/{self.weights}"

    @classmethod
    def from_cache_key(cls, key: str) -> "ClipSpec":
        architecture, _, weights = key.removeprefix(CLIP_KEY_PREFIX).partition("/")
        return cls(architecture, weights)

    @property
    def label(self) -> str:
        """Architecture/weights, with a checkpoint file named by its file name."""
        return f"{self.architecture}/{Path(self.weights).name}"


@dataclass
class LoadedClip:
    spec: ClipSpec
    model: torch.nn.Module
    tokenizer: Any
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def components(self) -> dict[str, torch.nn.Module]:
        """What the cache measures for its memory budget."""
        return {"model": self.model}

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


def register_clip_configs(paths: tuple[Path, ...]) -> None:
    """Add open_clip model configs (JSON files, or folders of them) to the names open_clip knows, once each."""
    with _registry_lock:
        for path in map(Path, paths):
            if path.resolve() not in _registered_configs:
                open_clip.add_model_config(path.resolve())
                _registered_configs.add(path.resolve())


def clip_config_files(paths: tuple[Path, ...]) -> dict[str, Path]:
    """The config files that registering these config files or folders adds, by the architecture name each adds."""
    files = [file for path in map(Path, paths) for file in (sorted(path.glob("*.json")) if path.is_dir() else [path])]
    return {file.stem: file for file in files if file.suffix == ".json"}


def clip_folders(models_dirs: list[Path]) -> dict[str, Path]:
    """The CLIP model folders (open_clip's local-dir format) in these directories, by folder name."""
    return {folder.name: folder for directory in models_dirs if directory.is_dir()
            for folder in sorted(directory.iterdir()) if (folder / CLIP_FOLDER_CONFIG).is_file()}


def load_clip(spec: ClipSpec, device: str, offline: bool = False, config_paths: tuple[Path, ...] = (),
              folders: dict[str, Path] | None = None) -> LoadedClip:
    """create_model with the spec's weights, in fp32 and eval mode; failures become ModelUnavailableError."""
    if spec.architecture in (folders or {}):
        return load_clip_folder(spec, folders[spec.architecture], device)
    register_clip_configs(config_paths)
    if spec.architecture not in open_clip.list_models():
        raise ModelUnavailableError(
            f"Unknown CLIP architecture {spec.architecture!r}: open_clip knows {len(open_clip.list_models())} names, "
            f"such as {', '.join(SUGGESTED_ARCHITECTURES)} (open_clip.list_models() lists them). A custom "
            f"architecture needs its open_clip config JSON registered with DS_CLIP_CONFIGS.")
    checkpoint, tag_config = checkpoint_file(spec, offline)
    try:
        model = open_clip.create_model(spec.architecture, pretrained=checkpoint, device=device,
                                       force_quick_gelu=bool(tag_config.get("quick_gelu")),
                                       force_preprocess_cfg=tag_config)
        tokenizer = open_clip.get_tokenizer(spec.architecture)
    except Exception as err:  # a checkpoint of another architecture fails in many ways (even assertions)
        logger.warning("loading CLIP %s failed: %s", spec.label, err)
        raise ModelUnavailableError(
            f"CLIP model {spec.label} could not be loaded from {checkpoint} (is it a checkpoint of "
            f"{spec.architecture}?): {str(err).splitlines()[0] if str(err) else type(err).__name__}") from err
    return loaded_clip(spec, model, tokenizer)


def load_clip_folder(spec: ClipSpec, folder: Path, device: str) -> LoadedClip:
    """A CLIP model folder (local-dir): its own config, weights and tokenizer."""
    name = f"local-dir:{folder}"
    return loaded_clip(spec, open_clip.create_model(name, device=device), open_clip.get_tokenizer(name))


def loaded_clip(spec: ClipSpec, model: torch.nn.Module, tokenizer) -> LoadedClip:
    model.eval().requires_grad_(False)
    preprocess = model.visual.preprocess_cfg
    size = preprocess["size"]
    image_size = (size, size) if isinstance(size, int) else tuple(size)
    return LoadedClip(spec, model, tokenizer, image_size, tuple(preprocess["mean"]), tuple(preprocess["std"]))


def checkpoint_file(spec: ClipSpec, offline: bool) -> tuple[str, dict]:
    """The local checkpoint file of the spec's weights and the pretrained tag's settings ({} for a file)."""
    if Path(spec.weights).is_file():
        return spec.weights, {}
    tag_config = open_clip.get_pretrained_cfg(spec.architecture, spec.weights)
    if not tag_config:
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(spec.architecture)) or "none"
        raise ModelUnavailableError(
            f"CLIP weights {spec.weights!r} are neither a pretrained tag of {spec.architecture} (its tags: {tags}) "
            f"nor an existing checkpoint file.")
    if offline:
        checkpoint = cached_checkpoint(tag_config)
    else:
        try:
            checkpoint = open_clip.download_pretrained(tag_config)
        except (OSError, RuntimeError, ValueError) as err:
            logger.warning("downloading CLIP %s failed: %s", spec.label, err)
            checkpoint = None
    if not checkpoint:
        raise ModelUnavailableError(unavailable_message(spec, tag_config, offline))
    return checkpoint, tag_config


def hub_location(tag_config: dict) -> tuple[str, list[str]]:
    """The hub repository of a pretrained tag and the file names open_clip looks for there, preferred first."""
    repo, filename = os.path.split(tag_config.get("hf_hub", ""))
    filename = filename or HF_WEIGHTS_NAME
    safe = {HF_WEIGHTS_NAME: HF_SAFE_WEIGHTS_NAME}.get(filename, str(Path(filename).with_suffix(".safetensors")))
    return repo, [safe, filename]


def cached_checkpoint(tag_config: dict) -> str | None:
    """A pretrained tag's checkpoint from the local Hugging Face cache, without contacting the hub."""
    repo, filenames = hub_location(tag_config)
    if not repo:
        return None
    found = (try_to_load_from_cache(repo, filename) for filename in filenames)
    return next((path for path in found if isinstance(path, str)), None)


def unavailable_message(spec: ClipSpec, tag_config: dict, offline: bool) -> str:
    repo, filenames = hub_location(tag_config)
    source = f"{constants.ENDPOINT}/{repo}" if repo else tag_config.get("url", "its download address")
    reason = "the app runs offline" if offline else "the hub could not be reached"
    return (
        f"CLIP model {spec.architecture} with weights {spec.weights!r} is not available: its checkpoint is not in "
        f"the local Hugging Face cache and {reason}. Run the app once with network access to "
        f"download it, or download {filenames[0] if repo else 'the checkpoint'} from {source} and enter the "
        f"file's path as the CLIP weights. {MIRROR_HINT}"
    )
