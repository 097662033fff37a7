"""What a training job is asked for (the Training tab's choices and presets) and the TrainingConfig it makes."""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, replace

from ..hardware import default_mixed_precision
from ..training.config import MIXED_PRECISION, TrainingConfig

MODEL_SIZES = {
    "tiny": dict(block_out_channels=[16, 32], layers_per_block=1, attention=False),
    "small": dict(block_out_channels=[32, 64, 128], layers_per_block=2, attention=True),
    "medium": dict(block_out_channels=[64, 128, 256, 256], layers_per_block=2, attention=True),
}
MIN_RESOLUTION = 8
MAX_RESOLUTION = 256
MAX_BATCH_SIZE = 256
MAX_NAME_LENGTH = 64
DATASET_FOLDER = "dataset"
OUTPUT_FOLDER = "output"


@dataclass(frozen=True)
class JobOptions:
    name: str
    base_model: str | None = None  # a catalog model to fine-tune; None trains from scratch
    model_size: str = "small"  # from scratch only
    resolution: int = 32
    grayscale: bool = False
    class_conditional: bool = False
    steps: int | None = 2000  # train this many steps, or
    epochs: int | None = None  # this many passes over the images
    batch_size: int = 16
    learning_rate: float = 2e-4
    mixed_precision: str = "no"
    use_ema: bool = True
    sample_every: int = 250  # steps between sample grids; 0: only at the end
    sample_steps: int = 50  # DDIM steps of each sample grid
    checkpoint_every: int = 250


def presets(device: str) -> dict[str, JobOptions]:
    """The Training tab's presets, in the mixed precision that is fastest on the device jobs train on."""
    precision = default_mixed_precision(device)
    return {
        "Quick test": JobOptions(name="", model_size="tiny", resolution=16, steps=20, batch_size=8,
                                 learning_rate=1e-3, mixed_precision=precision, sample_every=10, sample_steps=20,
                                 checkpoint_every=10),
        "Standard": JobOptions(name="", mixed_precision=precision),
    }


def check_name(name: str) -> str:
    """A job's (and its model's) name: printable, no slashes, at most MAX_NAME_LENGTH characters."""
    name = unicodedata.normalize("NFC", (name or "").strip())
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"A job name must have 1 to {MAX_NAME_LENGTH} characters, got {len(name)}.")
    if any(c in "/\\" or unicodedata.category(c).startswith("C") for c in name):
        raise ValueError(f"Job name {name!r} may not contain slashes or control characters.")
    return name


def total_steps(options: JobOptions, images: int) -> int:
    if options.steps:
        return options.steps
    return options.epochs * math.ceil(images / options.batch_size)


def training_config(options: JobOptions, images: int, max_train_steps: int,
                    pretrained_model: str | None = None) -> TrainingConfig:
    """The trainer's config, with paths relative to the job's folder (the trainer runs there).

    images: how many the dataset holds; pretrained_model: the base model's source when fine-tuning.
    """
    require_range("Resolution", options.resolution, MIN_RESOLUTION, MAX_RESOLUTION)
    require_range("Batch size", options.batch_size, 1, MAX_BATCH_SIZE)
    if (options.steps is None) == (options.epochs is None):
        raise ValueError("Choose either a number of steps or a number of epochs.")
    if options.steps is not None:
        require_range("Steps", options.steps, 1, max_train_steps)
    else:
        require_range("Epochs", options.epochs, 1, max_train_steps)
    steps = total_steps(options, images)
    if steps > max_train_steps:
        raise ValueError(f"{options.epochs} epochs of {images} images at batch size {options.batch_size} are "
                         f"{steps:,} steps; this server allows at most {max_train_steps:,} (DS_MAX_TRAIN_STEPS).")
    if not 0 < options.learning_rate <= 1:
        raise ValueError(f"Learning rate must be above 0 and at most 1, got {options.learning_rate}.")
    if options.mixed_precision not in MIXED_PRECISION:
        raise ValueError(f"Mixed precision must be one of {', '.join(MIXED_PRECISION)}.")
    require_range("Sample interval", options.sample_every, 0, max_train_steps)
    require_range("Sample grid steps", options.sample_steps, 1, 1000)
    require_range("Checkpoint interval", options.checkpoint_every, 1, max_train_steps)
    if options.model_size not in MODEL_SIZES:
        raise ValueError(f"Model size must be one of {', '.join(MODEL_SIZES)}.")

    config = TrainingConfig(
        train_data_dir=DATASET_FOLDER,
        output_dir=OUTPUT_FOLDER,
        class_conditional=options.class_conditional,
        resolution=options.resolution,
        channels=1 if options.grayscale else 3,
        **MODEL_SIZES[options.model_size],
        train_batch_size=options.batch_size,
        learning_rate=options.learning_rate,
        lr_warmup_steps=min(100, steps // 10),
        num_epochs=options.epochs or 1,
        max_train_steps=options.steps,
        mixed_precision=options.mixed_precision,
        use_ema=options.use_ema,
        checkpointing_steps=options.checkpoint_every,
        resume_from_checkpoint="latest",
        save_images_steps=options.sample_every,
        sample_inference_steps=options.sample_steps,
        log_every_steps=max(1, min(10, steps // 100)),
    )
    if pretrained_model is not None:
        if options.class_conditional:
            raise ValueError("Fine-tuning starts from an unconditional model: untick class-conditional training, "
                             "or train a class-conditional model from scratch.")
        config = replace(config, pretrained_model=pretrained_model)
    config.validate()
    return config


def require_range(label: str, value, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{label} must be a whole number from {low} to {high}, got {value!r}.")
