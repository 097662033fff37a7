"""The models the app knows: name -> source (hub id or local folder), kind and defaults."""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import try_to_load_from_cache

UNCONDITIONAL = "unconditional"
CLASS_CONDITIONAL = "class-conditional"
TEXT_TO_IMAGE = "text-to-image"
CLIP = "clip"
LORA = "lora"  # adapters for a text-to-image model, not a pipeline: the Text to image tab applies them
LORA_FILE = "lora.json"  # written by the trainer's lora mode beside the weights, naming the base model
# A tiny autoencoder (TAESD: diffusers' AutoencoderTiny) that decodes a text-to-image model's latents in a fraction
# of its VAE's time: for previews at every step, and a fast final image.
TINY_AUTOENCODER = "tiny-autoencoder"
TINY_AUTOENCODER_FILE = "tiny_autoencoder.json"  # written by the trainer's tiny-vae mode, naming the base model
SD15 = "stable-diffusion-v1-5/stable-diffusion-v1-5"

# Pipeline class names (model_index.json "_class_name") -> kind.
PIPELINE_KINDS = {
    "DDPMPipeline": UNCONDITIONAL,
    "DDIMPipeline": UNCONDITIONAL,
    "ClassConditionalPipeline": CLASS_CONDITIONAL,
    "StableDiffusionPipeline": TEXT_TO_IMAGE,
}


@dataclass(frozen=True)
class FewStepSampling:
    """How a distilled (LCM) LoRA samples: its sampler, steps and CFG scale (1: the guidance is distilled in)."""
    sampler: str
    steps: int
    guidance_scale: float


SAMPLER_NAMES = {"LCMScheduler": "LCM", "TCDScheduler": "TCD"}  # lora.json's scheduler class -> the tab's sampler
LCM_SAMPLING = FewStepSampling("LCM", 4, 1.0)


@dataclass(frozen=True)
class ModelEntry:
    name: str
    source: str
    kind: str
    description: str = ""
    class_names: tuple[str, ...] = ()  # class-conditional models only
    base_model: str | None = None  # LoRAs and tiny autoencoders: the source of the model they were trained on
    owner: str | None = None  # trained by a public server's visitor, and theirs alone to list and use
    few_step: FewStepSampling | None = None  # LoRAs distilled for few-step sampling (LCM-LoRA) only

    @property
    def is_local(self) -> bool:
        return Path(self.source).is_dir()

    def available_offline(self) -> bool:
        """True when loading needs no network: a local folder, or a hub id already in the HF cache."""
        if self.is_local:
            return any((Path(self.source) / name).is_file()
                       for name in ("model_index.json", LORA_FILE, TINY_AUTOENCODER_FILE))
        index = {LORA: "pytorch_lora_weights.safetensors", TINY_AUTOENCODER: "config.json"}.get(self.kind,
                                                                                              "model_index.json")
        return isinstance(try_to_load_from_cache(self.source, index), str)


HUB_MODELS = (
    ModelEntry("google/ddpm-cifar10-32", "google/ddpm-cifar10-32", UNCONDITIONAL, "CIFAR-10, 32x32 (36M params)"),
    ModelEntry("google/ddpm-cat-256", "google/ddpm-cat-256", UNCONDITIONAL, "LSUN cats, 256x256 (114M params)"),
    ModelEntry("google/ddpm-celebahq-256", "google/ddpm-celebahq-256", UNCONDITIONAL, "CelebA-HQ faces, 256x256"),
    ModelEntry(SD15, SD15, TEXT_TO_IMAGE, "Stable Diffusion 1.5, 512x512 (about 5 GB to download)"),
    ModelEntry("latent-consistency/lcm-lora-sdv1-5", "latent-consistency/lcm-lora-sdv1-5", LORA,
               "LCM-LoRA for Stable Diffusion 1.5: 4 steps at CFG 1 (about 135 MB to download)",
               base_model=SD15, few_step=LCM_SAMPLING),
    ModelEntry("madebyollin/taesd", "madebyollin/taesd", TINY_AUTOENCODER,
               "TAESD, the tiny autoencoder of Stable Diffusion 1.x and 2.x (about 10 MB to download)", base_model=SD15),
)
HUB_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


class UnknownModelError(ValueError):
    pass


class Catalog:
    """Thread-safe registry; entries added later (finished training jobs) show up in every listing."""

    def __init__(self, entries: tuple[ModelEntry, ...] | list[ModelEntry] = ()):
        self._entries: dict[str, ModelEntry] = {}
        self._lock = threading.Lock()
        for entry in entries:
            self.register(entry)

    def register(self, entry: ModelEntry) -> None:
        with self._lock:
            self._entries[entry.name] = entry

    def unregister(self, name: str) -> None:
        with self._lock:
            self._entries.pop(name, None)

    def get(self, name: str) -> ModelEntry:
        with self._lock:
            entry = self._entries.get(name)
            known = ", ".join(self._entries)
        if entry is None:
            raise UnknownModelError(f"Unknown model {name!r}. Known models: {known or 'none'}.")
        return entry

    def find(self, name: str, kind: str) -> ModelEntry:
        """A catalog model, or else an unlisted local pipeline folder or hub repo id (owner/name) taken as `kind`."""
        try:
            return self.get(name)
        except UnknownModelError:
            if not (Path(name).expanduser().is_dir() or HUB_REPO_ID.fullmatch(name)):
                raise UnknownModelError(
                    f"Unknown model {name!r}: choose a listed model, a hub repo id (owner/name) or a local "
                    f"diffusers pipeline folder.") from None
        return entry_from_spec(name, name, hub_kind=kind)

    def find_or_add(self, name: str, kind: str) -> ModelEntry:
        """`find`, registering an unlisted model so that it loads like a listed one."""
        entry = self.find(name, kind)
        self.register(entry)
        return entry

    def entries(self, kind: str | None = None) -> list[ModelEntry]:
        with self._lock:
            entries = list(self._entries.values())
        return [e for e in entries if kind is None or e.kind == kind]

    def names(self, kind: str | None = None) -> list[str]:
        return [e.name for e in self.entries(kind)]

    def few_step_loras(self, base_source: str) -> list[ModelEntry]:
        """The distilled LoRAs trained on this model (its catalog source), local ones first."""
        return [entry for entry in self.entries(LORA) if entry.few_step and entry.base_model == base_source]

    def tiny_autoencoders(self, base_source: str) -> list[ModelEntry]:
        """The tiny autoencoders that decode this model's latents (its catalog source), local ones first."""
        return [entry for entry in self.entries(TINY_AUTOENCODER) if entry.base_model == base_source]

    def default(self, kind: str) -> str | None:
        """The first model of this kind that loads offline, else the first of the kind."""
        entries = self.entries(kind)
        offline = [e for e in entries if e.available_offline()]
        chosen = offline or entries
        return chosen[0].name if chosen else None


def base_model_of(folder: Path, described: dict) -> str | None:
    """The base model a LoRA or tiny autoencoder folder names; "../name" is a folder bundled beside it."""
    base = described.get("base_model")
    if base and base.startswith("../") and (folder / base).is_dir():
        base = str((folder / base).resolve())
    return base


def entry_from_folder(folder: Path, name: str | None = None) -> ModelEntry | None:
    """Describe a save_pretrained pipeline folder, a LoRA folder or a tiny autoencoder folder, or None when it is
    none of them."""
    if (folder / TINY_AUTOENCODER_FILE).is_file():
        base = base_model_of(folder, json.loads((folder / TINY_AUTOENCODER_FILE).read_text()))
        return ModelEntry(name or folder.name, str(folder.resolve()), TINY_AUTOENCODER,
                          f"tiny autoencoder for {base}", base_model=base)
    if (folder / LORA_FILE).is_file():
        described = json.loads((folder / LORA_FILE).read_text())
        base = base_model_of(folder, described)
        distilled = described.get("distilled")
        few_step = None
        if distilled and distilled.get("scheduler") in SAMPLER_NAMES:
            few_step = FewStepSampling(SAMPLER_NAMES[distilled["scheduler"]], int(distilled["num_inference_steps"]),
                                       float(distilled["guidance_scale"]))
        kind_of_lora = f"{few_step.sampler}-LoRA" if few_step else "LoRA"
        return ModelEntry(name or folder.name, str(folder.resolve()), LORA, f"{kind_of_lora} for {base}",
                          base_model=base, few_step=few_step)
    index = folder / "model_index.json"
    if not index.is_file():
        return None
    config = json.loads(index.read_text())
    kind = PIPELINE_KINDS.get(config.get("_class_name", ""))
    if kind is None:
        return None
    return ModelEntry(name or folder.name, str(folder.resolve()), kind, f"local {config['_class_name']}",
                      tuple(config.get("class_names", ())))


def local_entries(models_dir: Path) -> list[ModelEntry]:
    if not models_dir.is_dir():
        return []
    found = (entry_from_folder(folder) for folder in sorted(models_dir.iterdir()) if folder.is_dir())
    return [entry for entry in found if entry is not None]


def entry_from_spec(name: str, source: str, hub_kind: str = UNCONDITIONAL) -> ModelEntry:
    """A user-added model: a local folder is inspected; a hub id is taken to be of `hub_kind`."""
    folder = Path(source).expanduser()
    if folder.is_dir():
        entry = entry_from_folder(folder, name)
        if entry is None:
            raise ValueError(f"{source!r} is not a diffusers pipeline folder (no usable model_index.json).")
        return entry
    return ModelEntry(name, source, hub_kind, "hub model")


def build_catalog(model_dirs: list[Path], extra_models: tuple[tuple[str, str], ...] = ()) -> Catalog:
    """Local models first (they work offline), then the hub models, then user additions."""
    entries = [entry for folder in model_dirs for entry in local_entries(folder)] + list(HUB_MODELS)
    entries += [entry_from_spec(name, source) for name, source in extra_models]
    return Catalog(entries)
