"""The bundled text-to-image model emoji-t2i: a StableDiffusionPipeline at 64x64 whose every part the
project trains, in stages that each resume (`python -m diffusion_app bundle emoji-t2i`):

1. a small AutoencoderKL (trainer mode vae) on the 64 px emoji: 64 px <-> 16x16x4 latents, then refitted with
   GroupNorm groups of 4 channels on the colour-captioned set, keeping its latents (vae_latents_from), so that
   it decodes green and purple;
2. the text tower of the bundled emoji-clip as a transformers CLIPTextModel, through diffusers' mapping of
   open_clip text towers, checked to reproduce open_clip's text features; CLIP's tokenizer at its context;
3. a UNet2DConditionModel from scratch (trainer mode text-to-image) on the captioned emoji, their
   colour-captioned and recoloured copies (colour_captions.py), with caption dropout so that classifier-free
   guidance works.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import open_clip
import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline
from diffusers.loaders.single_file_utils import convert_open_clip_checkpoint
from safetensors.torch import load_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from ..tiny_sd import clip_tokenizer
from .colour_captions import add_colour_captions
from .config import TrainingConfig
from .emoji_captions import build_emoji_caption_folder
from .installing import install, train_to_the_end
from .modes.clip import CONFIG_FILE, WEIGHTS_FILE
from .packaged_data import OPENMOJI_ATTRIBUTION, build_dataset_once

FEATURE_TOLERANCE = 1e-3  # open_clip and the converted encoder: largest difference of normalised text features
CHECK_PROMPTS = ("red heart", "grinning face", "flag: Japan", "dog face", "green apple")

VAE = TrainingConfig(
    mode="vae", resolution=64, block_out_channels=[32, 64, 64], layers_per_block=1, latent_channels=4,
    kl_weight=1e-6, random_flip=True, train_batch_size=32, learning_rate=1e-3, lr_warmup_steps=100,
    max_train_steps=2000, use_ema=False, checkpointing_steps=250, save_images_steps=500, save_precision="fp32",
)
# The refit (vae_latents_from is set where it runs): a shorter run from the first VAE, as the bundled VAE was made.
VAE_REFIT = replace(VAE, lr_warmup_steps=50, max_train_steps=1700, checkpointing_steps=100, save_images_steps=250)
UNET = TrainingConfig(
    mode="text-to-image", unet_from_scratch=True, resolution=64, block_out_channels=[64, 128, 256],
    layers_per_block=2, caption_dropout_prob=0.1, prediction_type="v_prediction", snr_gamma=5.0,
    train_batch_size=64, learning_rate=5e-4, lr_warmup_steps=200, max_train_steps=6000, ema_max_decay=0.999,
    checkpointing_steps=250, save_images_steps=1000, num_sample_images=16, sample_inference_steps=25,
    validation_guidance_scale=4.0, validation_prompts=["red heart", "green apple", "dog face", "grinning face"],
    save_precision="fp16",
)

def clip_text_encoder(clip_folder: Path) -> CLIPTextModelWithProjection:
    """emoji-clip's text tower (and its projection) as a transformers model, with open_clip's weights."""
    model_cfg = json.loads((clip_folder / CONFIG_FILE).read_text())["model_cfg"]
    text = model_cfg["text_cfg"]
    config = CLIPTextConfig(vocab_size=text["vocab_size"], hidden_size=text["width"],
                            intermediate_size=int(text.get("mlp_ratio", 4.0) * text["width"]),
                            num_hidden_layers=text["layers"], num_attention_heads=text["heads"],
                            max_position_embeddings=text["context_length"], projection_dim=model_cfg["embed_dim"],
                            hidden_act="gelu", bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    model = CLIPTextModelWithProjection(config)
    weights = {key: value.float() for key, value in load_file(clip_folder / WEIGHTS_FILE).items()}
    missing, unexpected = model.load_state_dict(convert_open_clip_checkpoint(model, weights, prefix=""), strict=False)
    if [key for key in missing if "position_ids" not in key] or unexpected:
        raise ValueError(f"emoji-clip's text tower did not map onto CLIPTextModel: missing {missing}, "
                         f"unexpected {unexpected}.")
    return model.eval()


@torch.no_grad()
def text_feature_difference(clip_folder: Path, model: CLIPTextModelWithProjection, tokenizer) -> float:
    """Largest difference between open_clip's normalised text features and the converted model's."""
    reference = open_clip.create_model(f"local-dir:{clip_folder}").eval()
    tokens = open_clip.get_tokenizer(f"local-dir:{clip_folder}")(list(CHECK_PROMPTS))
    expected = torch.nn.functional.normalize(reference.encode_text(tokens).float(), dim=-1)
    ids = tokenizer(list(CHECK_PROMPTS), padding="max_length", max_length=tokenizer.model_max_length,
                    return_tensors="pt").input_ids
    actual = torch.nn.functional.normalize(model(ids).text_embeds.float(), dim=-1)
    return (expected - actual).abs().max().item()


def build_components(work: Path, clip_folder: Path, vae_folder: Path) -> Path:
    """A StableDiffusionPipeline folder without a UNet: the trained VAE, the converted text encoder, CLIP's
    tokenizer at emoji-clip's context, and a v-prediction DDIM schedule on the cosine noise schedule."""
    text_model = clip_text_encoder(clip_folder)
    context = text_model.config.max_position_embeddings
    tokenizer = clip_tokenizer(work / "tokenizer-files", context_length=context)
    difference = text_feature_difference(clip_folder, text_model, tokenizer)
    if difference > FEATURE_TOLERANCE:
        raise ValueError(f"The converted text encoder's features differ from open_clip's by {difference:.2e}.")
    print(f"emoji-t2i: the converted text encoder reproduces emoji-clip's text features within {difference:.1e}")
    text_encoder = CLIPTextModel(text_model.config)
    text_encoder.load_state_dict(text_model.state_dict(), strict=False)
    scheduler = DDIMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction", clip_sample=False,
                              set_alpha_to_one=False, timestep_spacing="trailing")
    pipeline = StableDiffusionPipeline(vae=AutoencoderKL.from_pretrained(vae_folder), text_encoder=text_encoder,
                                       tokenizer=tokenizer, unet=None, scheduler=scheduler, safety_checker=None,
                                       feature_extractor=None, requires_safety_checker=False)
    folder = work / "components"
    pipeline.save_pretrained(folder)
    return folder


def emoji_t2i_datasets(work: Path) -> tuple[Path, Path]:
    """The captioned emoji and their colour-captioned, recoloured copies (built once, then reused)."""
    dataset = build_dataset_once(work / "dataset", build_emoji_caption_folder)
    coloured = build_dataset_once(work / "dataset-colour", lambda out: add_colour_captions(dataset / "train", out))
    return dataset, coloured


def build_emoji_t2i(work_dir: Path, models_dir: Path, **overrides) -> Path:
    """Dataset -> VAE -> text encoder -> UNet -> models/emoji-t2i; run it again to resume a stage."""
    work = work_dir / "emoji-t2i"
    clip_folder = models_dir / "emoji-clip"
    if not (clip_folder / WEIGHTS_FILE).is_file():
        raise ValueError("emoji-t2i's text encoder is emoji-clip's: run `python -m diffusion_app bundle emoji-clip` "
                         "first.")
    dataset, coloured = emoji_t2i_datasets(work)
    stage = {key: value for key, value in overrides.items() if key == "mixed_precision"}
    vae = train_to_the_end(replace(VAE, train_data_dir=str(dataset / "train"), output_dir=str(work / "vae-run"),
                                   resume_from_checkpoint="latest", **stage), "The VAE stage")
    refit = train_to_the_end(replace(VAE_REFIT, vae_latents_from=str(vae), train_data_dir=str(coloured),
                                     output_dir=str(work / "vae-refit"), resume_from_checkpoint="latest", **stage),
                             "The VAE refit")
    components = build_components(work, clip_folder, refit)
    unet = replace(UNET, train_data_dir=str(coloured), output_dir=str(work / "unet-run"),
                   pretrained_model=str(components), resume_from_checkpoint="latest", **overrides)
    target = install(train_to_the_end(unet, "The UNet stage"), unet, models_dir / "emoji-t2i", OPENMOJI_ATTRIBUTION)
    shutil.copy(Path(work / "vae-refit") / "config.json", target / "vae" / "training_config.json")
    return target
