"""TrainingConfig: every option of the trainer, from a JSON file and/or command-line flags."""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path

MODES = ("ddpm", "text-to-image", "lora", "lcm-lora", "clip", "vae", "tiny-vae")
MIXED_PRECISION = ("no", "fp16", "bf16")
PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")
BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
LR_SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup")


@dataclass
class TrainingConfig:
    # What is trained (training/modes/): a pixel-space DDPM UNet, a text-to-image UNet against a Stable
    # Diffusion pipeline's VAE and text encoder, LoRA adapters on such a pipeline, an open_clip model, a VAE, or a
    # tiny autoencoder distilled from a pipeline's VAE.
    mode: str = "ddpm"
    # Data: an imagefolder (images directly inside, captioned or not, or one subfolder per class), or a
    # `datasets` dataset (a hub id or a local dataset folder) with the columns named below.
    train_data_dir: str = ""
    dataset_name: str | None = None
    dataset_split: str = "train"
    image_column: str = "image"
    caption_column: str | None = "text"
    label_column: str | None = None
    instance_prompt: str | None = None  # the caption of images that have none (DreamBooth style)
    output_dir: str = "data/train-output"
    # Model: from scratch (the architecture below), or fine-tune a pipeline. text-to-image and LoRA take the
    # VAE, tokenizer and text encoder (and, unless unet_from_scratch, the UNet) of this Stable Diffusion pipeline.
    pretrained_model: str | None = None  # hub id or local save_pretrained folder
    unet_from_scratch: bool = False  # text-to-image: a new UNet2DConditionModel of block_out_channels
    class_conditional: bool | None = None  # None: true when the folder has class subfolders
    # Class-conditional: the share of labels replaced by a "no class" label while training, so that
    # one model also predicts unconditionally and can be sampled with classifier-free guidance.
    class_dropout_prob: float = 0.1
    resolution: int = 32
    channels: int = 3
    block_out_channels: list[int] = field(default_factory=lambda: [32, 64, 128])
    layers_per_block: int = 2
    attention: bool = True  # self-attention in the lowest-resolution blocks
    # Data augmentation, as in the diffusers training examples.
    center_crop: bool = True
    random_flip: bool = False
    # Optimisation.
    train_batch_size: int = 16
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-4
    lr_scheduler: str = "cosine"
    lr_warmup_steps: int = 100
    adam_beta1: float = 0.95
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-6
    adam_epsilon: float = 1e-8
    num_epochs: int = 10
    max_train_steps: int | None = None  # overrides num_epochs when set
    mixed_precision: str = "no"
    seed: int = 0
    dataloader_num_workers: int = 0
    # Diffusion.
    num_train_timesteps: int = 1000
    beta_schedule: str = "linear"
    prediction_type: str = "epsilon"
    # Text-to-image and LoRA.
    caption_dropout_prob: float = 0.1  # captions replaced by "" so the model also learns the unconditional case (CFG)
    snr_gamma: float | None = None  # Min-SNR loss weighting (Hang et al. 2023); 5.0 is the usual choice
    lora_rank: int = 4
    lora_alpha: int = 4
    train_text_encoder: bool = False  # LoRA: adapters on the text encoder's attention too
    initial_lora: str | None = None  # a saved LoRA folder the UNet adapters start from (same rank)
    validation_prompts: list[str] = field(default_factory=list)  # sample grids; default: the first captions
    validation_guidance_scale: float = 5.0
    # Latent consistency distillation into a LoRA (mode "lcm-lora", modes/lcm_lora.py): the teacher's DDIM solver
    # takes lcm_solver_steps steps; its guidance scale is drawn from [lcm_guidance_min, lcm_guidance_max].
    lcm_solver_steps: int = 50
    lcm_guidance_min: float = 3.0
    lcm_guidance_max: float = 8.0
    huber_c: float = 0.001  # the pseudo-Huber loss's width; the LCM paper's choice
    # CLIP (mode "clip"): an open_clip model config JSON; cutouts per image and step.
    clip_config: str | None = None
    clip_cutouts: int = 2
    # VAE (mode "vae").
    latent_channels: int = 4
    kl_weight: float = 1e-6
    vae_latents_from: str | None = None  # a trained VAE whose latents the new one keeps (see modes/vae.py)
    # Tiny autoencoder (mode "tiny-vae"): channels at every level; TAESD's 64 suit Stable Diffusion's wide VAE, and
    # a VAE as narrow as emoji-t2i's needs fewer to be outrun.
    tiny_vae_channels: int = 64
    # Exponential moving average of the weights (the saved pipeline uses the EMA weights).
    use_ema: bool = True
    ema_max_decay: float = 0.9999
    ema_inv_gamma: float = 1.0
    ema_power: float = 0.75
    # Outputs.
    checkpointing_steps: int = 500
    checkpoints_total_limit: int | None = 2
    resume_from_checkpoint: str | None = None  # a checkpoint folder, or "latest"
    save_images_steps: int = 500  # a sample grid every N steps (0: only at the end)
    num_sample_images: int = 16
    sample_inference_steps: int = 50  # DDIM steps for sample grids
    log_every_steps: int = 10
    save_precision: str = "fp32"  # "fp16" halves the size of the saved pipeline
    push_to_hub: bool = False
    hub_model_id: str | None = None  # the token comes from HF_TOKEN, never from the config

    @classmethod
    def from_file(cls, path: str | Path, **overrides) -> "TrainingConfig":
        values = json.loads(Path(path).read_text())
        unknown = set(values) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"Unknown training option(s) in {path}: {', '.join(sorted(unknown))}.")
        return cls(**{**values, **overrides})

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    def validate(self) -> None:
        """Problems that can be found before any work starts, each with what is allowed."""
        checks = [
            (self.mode in MODES, f"mode must be one of {MODES}, got {self.mode!r}."),
            (self.tiny_vae_channels >= 1, "tiny_vae_channels must be at least 1."),
            (bool(self.train_data_dir) or bool(self.dataset_name), "Give train_data_dir or dataset_name."),
            (self.mode not in ("text-to-image", "lora", "lcm-lora") or bool(self.pretrained_model),
             f"mode {self.mode!r} needs pretrained_model: the Stable Diffusion pipeline whose VAE and text encoder "
             "it trains against."),
            (0 <= self.caption_dropout_prob < 1, "caption_dropout_prob must be at least 0 and below 1."),
            (self.lora_rank >= 1 and self.lora_alpha >= 1, "lora_rank and lora_alpha must be at least 1."),
            (self.initial_lora is None or self.mode in ("lora", "lcm-lora"),
             "initial_lora continues a LoRA: it needs mode 'lora' or 'lcm-lora'."),
            (self.mode != "lcm-lora" or not self.train_text_encoder,
             "mode 'lcm-lora' distils the UNet only: set train_text_encoder to false."),
            (1 <= self.lcm_guidance_min <= self.lcm_guidance_max,
             "lcm_guidance_min must be at least 1 and at most lcm_guidance_max."),
            (self.lcm_solver_steps >= 2, "lcm_solver_steps must be at least 2."),
            (self.snr_gamma is None or self.snr_gamma > 0, "snr_gamma must be positive."),
            (self.mode != "clip" or bool(self.clip_config), "mode 'clip' needs clip_config, an open_clip config JSON."),
            (not self.vae_latents_from or (self.mode == "vae" and not self.pretrained_model),
             "vae_latents_from refits a trained VAE with mode 'vae'; it starts from that VAE, so give no "
             "pretrained_model."),
            (self.train_batch_size >= 1, f"train_batch_size must be at least 1, got {self.train_batch_size}."),
            (self.gradient_accumulation_steps >= 1, "gradient_accumulation_steps must be at least 1."),
            (self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate}."),
            (self.num_epochs >= 1 or bool(self.max_train_steps), "num_epochs must be at least 1."),
            (self.max_train_steps is None or self.max_train_steps >= 1, "max_train_steps must be at least 1."),
            (0 <= self.class_dropout_prob < 1,
             f"class_dropout_prob must be at least 0 and below 1, got {self.class_dropout_prob}."),
            (self.resolution >= 8, f"resolution must be at least 8, got {self.resolution}."),
            (self.channels in (1, 3), f"channels must be 1 (grayscale) or 3 (RGB), got {self.channels}."),
            (self.mixed_precision in MIXED_PRECISION, f"mixed_precision must be one of {MIXED_PRECISION}."),
            (self.prediction_type in PREDICTION_TYPES, f"prediction_type must be one of {PREDICTION_TYPES}."),
            (self.beta_schedule in BETA_SCHEDULES, f"beta_schedule must be one of {BETA_SCHEDULES}."),
            (self.lr_scheduler in LR_SCHEDULERS, f"lr_scheduler must be one of {LR_SCHEDULERS}."),
            (self.save_precision in ("fp32", "fp16"), "save_precision must be fp32 or fp16."),
            (self.checkpointing_steps >= 1, "checkpointing_steps must be at least 1."),
            (not self.push_to_hub or bool(self.hub_model_id), "push_to_hub needs hub_model_id."),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)
        if self.mode == "ddpm" and self.pretrained_model is None:
            factor = 2 ** (len(self.block_out_channels) - 1)
            if self.resolution % factor:
                raise ValueError(
                    f"resolution {self.resolution} cannot be halved evenly {len(self.block_out_channels) - 1} times "
                    f"by a UNet with block_out_channels {self.block_out_channels}: use a multiple of {factor}."
                )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One --flag per TrainingConfig field (flags override the --config file)."""
    parser.add_argument("--config", type=Path, help="JSON file with TrainingConfig fields")
    hints = typing.get_type_hints(TrainingConfig)
    for f in dataclasses.fields(TrainingConfig):
        flag = "--" + f.name
        hint = hints[f.name]
        if hint is bool or hint == bool | None:
            parser.add_argument(flag, type=parse_bool, metavar="true|false", default=None)
        elif typing.get_origin(hint) is list:
            parser.add_argument(flag, type=typing.get_args(hint)[0], nargs="+", default=None)
        else:
            base = next(t for t in typing.get_args(hint) or (hint,) if t is not type(None))
            parser.add_argument(flag, type=base, default=None)


def config_from_args(args: argparse.Namespace) -> TrainingConfig:
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainingConfig)
                 if getattr(args, f.name, None) is not None}
    if args.config:
        return TrainingConfig.from_file(args.config, **overrides)
    return TrainingConfig(**overrides)


def parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered not in ("true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return lowered in ("true", "1", "yes")
