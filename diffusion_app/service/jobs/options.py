"""What a training job is asked for (the Training tab's choices and presets) and the TrainingConfig it makes."""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass, replace

from ...hardware import default_mixed_precision
from ...training.config import MIXED_PRECISION, TrainingConfig

# What a job trains: the trainer's mode.
DDPM, TEXT_TO_IMAGE, LORA, LCM_LORA = "ddpm", "text-to-image", "lora", "lcm-lora"
KINDS = {
    DDPM: "Image model: an unconditional or class-conditional DDPM in pixel space",
    TEXT_TO_IMAGE: "Text to image: a Stable Diffusion UNet, fine-tuned or from scratch, against a base model's VAE "
                   "and text encoder",
    LORA: "LoRA: small adapters on a Stable Diffusion model, which stays as it is",
    LCM_LORA: "LCM distillation: an LCM-LoRA that samples a Stable Diffusion model in 4 steps at CFG 1",
}
TEXT_KINDS = (TEXT_TO_IMAGE, LORA, LCM_LORA)
LORA_KINDS = (LORA, LCM_LORA)  # jobs that save adapters (lora/), listed in the Text to image tab's LoRA chooser
MODEL_SIZES = {
    "tiny": dict(block_out_channels=[16, 32], layers_per_block=1, attention=False),
    "small": dict(block_out_channels=[32, 64, 128], layers_per_block=2, attention=True),
    "medium": dict(block_out_channels=[64, 128, 256, 256], layers_per_block=2, attention=True),
}
MIN_RESOLUTION = 8
MAX_RESOLUTION = 1024
MAX_BATCH_SIZE = 256
MAX_LORA_RANK = 128
MAX_NAME_LENGTH = 64
MAX_PROMPT_CHARACTERS = 500
DATASET_FOLDER = "dataset"
OUTPUT_FOLDER = "output"


@dataclass(frozen=True)
class JobOptions:
    name: str
    kind: str = DDPM
    base_model: str | None = None  # image model: one to fine-tune (None: from scratch); text kinds: the base pipeline
    from_scratch: bool = False  # text to image: a new UNet (model_size) instead of the base's
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
    instance_prompt: str | None = None  # text kinds: the caption of images that have none
    lora_rank: int = 8
    train_text_encoder: bool = False


def presets(device: str) -> dict[str, JobOptions]:
    """The Training tab's presets, in the mixed precision that is fastest on the device jobs train on. The quick
    tests finish in minutes on a CPU; the others are real runs (those marked GPU want one)."""
    precision = default_mixed_precision(device)
    return {
        "Quick test": JobOptions(name="", model_size="tiny", resolution=16, steps=20, batch_size=8,
                                 learning_rate=1e-3, mixed_precision=precision, sample_every=10, sample_steps=20,
                                 checkpoint_every=10),
        "Standard": JobOptions(name="", mixed_precision=precision),
        "LoRA, quick test": JobOptions(name="", kind=LORA, steps=20, batch_size=2, learning_rate=1e-3, lora_rank=4,
                                       mixed_precision=precision, use_ema=False, sample_every=10, sample_steps=10,
                                       checkpoint_every=10),
        "LoRA (GPU)": JobOptions(name="", kind=LORA, steps=1500, batch_size=4, learning_rate=1e-4, lora_rank=16,
                                 mixed_precision=precision, use_ema=False, sample_every=250, sample_steps=25),
        "LCM distillation, quick test": JobOptions(name="", kind=LCM_LORA, steps=20, batch_size=4,
                                                   learning_rate=5e-4, lora_rank=8, mixed_precision=precision,
                                                   use_ema=False, sample_every=10, sample_steps=4,
                                                   checkpoint_every=10),
        "Text to image from scratch, quick test": JobOptions(
            name="", kind=TEXT_TO_IMAGE, from_scratch=True, model_size="tiny", steps=20, batch_size=4,
            learning_rate=1e-3, mixed_precision=precision, sample_every=10, sample_steps=10, checkpoint_every=10),
        "Text to image fine-tune (GPU)": JobOptions(
            name="", kind=TEXT_TO_IMAGE, steps=2000, batch_size=8, learning_rate=1e-5, mixed_precision=precision,
            sample_every=250, sample_steps=25),
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

    images: how many the dataset holds; pretrained_model: the base model's source (fine-tuning, text kinds).
    """
    if options.kind not in KINDS:
        raise ValueError(f"Unknown kind of job {options.kind!r}; choose one of {', '.join(KINDS)}.")
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
    require_range("LoRA rank", options.lora_rank, 1, MAX_LORA_RANK)
    if options.model_size not in MODEL_SIZES:
        raise ValueError(f"Model size must be one of {', '.join(MODEL_SIZES)}.")
    if options.instance_prompt is not None and len(options.instance_prompt) > MAX_PROMPT_CHARACTERS:
        raise ValueError(f"The instance prompt may have at most {MAX_PROMPT_CHARACTERS} characters.")
    if options.kind in TEXT_KINDS and pretrained_model is None:
        raise ValueError("Choose the Stable Diffusion model to train against (text to image and LoRA need its VAE "
                         "and text encoder).")

    config = TrainingConfig(
        mode=options.kind,
        train_data_dir=DATASET_FOLDER,
        output_dir=OUTPUT_FOLDER,
        class_conditional=options.class_conditional,
        resolution=options.resolution,
        channels=1 if options.grayscale and options.kind == DDPM else 3,
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
        instance_prompt=(options.instance_prompt or "").strip() or None,
        unet_from_scratch=options.from_scratch,
        lora_rank=options.lora_rank,
        lora_alpha=options.lora_rank,
        train_text_encoder=options.train_text_encoder,
        save_precision="fp16" if options.kind in TEXT_KINDS else "fp32",
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
