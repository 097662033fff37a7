"""emoji-t2i made fast, as two models bundled beside it, each distilled from it on its own data:

- `bundle emoji-t2i-lcm`: an LCM-LoRA (trainer mode lcm-lora) that samples in 4 LCM steps at CFG scale 1;
- `bundle emoji-t2i-taesd`: a tiny autoencoder (trainer mode tiny-vae) that decodes its latents for previews at
  every step and, as an option, the final image.

Both name emoji-t2i as "../emoji-t2i", the folder beside them in models/, which the catalog resolves.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from ..catalog import TINY_AUTOENCODER_FILE
from .config import TrainingConfig
from .emoji_t2i import emoji_t2i_datasets
from .installing import install, train_to_the_end
from .packaged_data import OPENMOJI_ATTRIBUTION

# Few-step sampling (`bundle emoji-t2i-lcm`): an LCM-LoRA distilled from the bundled emoji-t2i on its own data,
# sized for two CPU cores (a step runs the UNet four times, three of them without gradients, about 10 s at batch
# 16). Shapes come in the first 300 steps and colours after them, so the first stage goes on to 700 with the
# teacher's guidance drawn from 3 to 6; a second goes on from its LoRA with the guidance around 7.5, the scale at
# which emoji-t2i draws the named colours best.
LCM = TrainingConfig(
    mode="lcm-lora", resolution=64, lora_rank=32, lora_alpha=32, train_batch_size=16, learning_rate=5e-4,
    lr_warmup_steps=20, max_train_steps=700, use_ema=False, lcm_guidance_min=3.0, lcm_guidance_max=6.0,
    checkpointing_steps=50, save_images_steps=100, num_sample_images=16,
    validation_prompts=["red heart", "green apple", "dog face", "grinning face"], save_precision="fp16",
)
LCM_COLOURS = replace(LCM, learning_rate=2e-4, lr_warmup_steps=10, max_train_steps=1000, lcm_guidance_min=6.0,
                      lcm_guidance_max=9.0)


# The tiny autoencoder (`bundle emoji-t2i-taesd`): TAESD's architecture at the VAE's three levels with 16 channels,
# on the 64 px emoji; a step encodes and decodes a batch with both autoencoders.
TINY_VAE = TrainingConfig(
    mode="tiny-vae", resolution=64, tiny_vae_channels=16, random_flip=True, train_batch_size=32, learning_rate=2e-3,
    lr_warmup_steps=50, max_train_steps=1000, use_ema=False, checkpointing_steps=250, save_images_steps=250,
    save_precision="fp16",
)


def emoji_t2i_base(models_dir: Path, name: str) -> Path:
    base = models_dir / "emoji-t2i"
    if not (base / "model_index.json").is_file():
        raise ValueError(f"{name} distils emoji-t2i: run `python -m diffusion_app bundle emoji-t2i` first.")
    return base


def beside_its_base(target: Path, described_file: str) -> Path:
    """Name the base model as the folder beside it in models/, wherever models/ is."""
    described = json.loads((target / described_file).read_text())
    (target / described_file).write_text(json.dumps({**described, "base_model": "../emoji-t2i"}, indent=2))
    return target


def build_emoji_t2i_lcm(work_dir: Path, models_dir: Path, **overrides) -> Path:
    """models/emoji-t2i -> an LCM-LoRA on it, trained on emoji-t2i's data -> models/emoji-t2i-lcm."""
    base = emoji_t2i_base(models_dir, "emoji-t2i-lcm")
    work = work_dir / "emoji-t2i"
    coloured = emoji_t2i_datasets(work)[1]
    shapes = replace(LCM, train_data_dir=str(coloured), output_dir=str(work / "lcm-run"), pretrained_model=str(base),
                     resume_from_checkpoint="latest", **overrides)
    first = train_to_the_end(shapes, "The distillation's first stage")
    colours = replace(LCM_COLOURS, train_data_dir=str(coloured), output_dir=str(work / "lcm-colours-run"),
                      pretrained_model=str(base), initial_lora=str(first), resume_from_checkpoint="latest",
                      **overrides)
    target = install(train_to_the_end(colours, "The distillation's second stage"), colours,
                     models_dir / "emoji-t2i-lcm", OPENMOJI_ATTRIBUTION)
    return beside_its_base(target, "lora.json")


def build_emoji_t2i_taesd(work_dir: Path, models_dir: Path, **overrides) -> Path:
    """models/emoji-t2i -> a tiny autoencoder of its VAE, trained on emoji-t2i's images -> models/emoji-t2i-taesd."""
    base = emoji_t2i_base(models_dir, "emoji-t2i-taesd")
    work = work_dir / "emoji-t2i"
    dataset = emoji_t2i_datasets(work)[0]
    tiny = replace(TINY_VAE, train_data_dir=str(dataset / "train"), output_dir=str(work / "taesd-run"),
                   pretrained_model=str(base), resume_from_checkpoint="latest", **overrides)
    target = install(train_to_the_end(tiny, "The tiny autoencoder"), tiny, models_dir / "emoji-t2i-taesd",
                     OPENMOJI_ATTRIBUTION)
    return beside_its_base(target, TINY_AUTOENCODER_FILE)
