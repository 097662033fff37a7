"""Random-weight Stable Diffusion pipelines with the real CLIP tokenizer, built offline: tiny ones in
seconds, and one of Stable Diffusion 1.5's full architecture for GPU benchmarks.

Stable Diffusion's tokenizer is OpenAI CLIP's byte-level BPE: 49,408 tokens made of the 256 byte
symbols, the same with the end-of-word marker, 48,894 merges in rank order, then the start and end
tokens. open_clip ships those merges (bpe_simple_vocab_16e6.txt.gz), so the vocab.json and merges.txt
that transformers' CLIPTokenizer reads are generated from it here, with no download. The tests and the
benchmarks build their Stable Diffusion models with these functions.
"""

from __future__ import annotations

import gzip
import importlib.resources
import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

CLIP_BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
CLIP_MERGE_COUNT = 48_894  # the merges CLIP uses: 49,408 tokens - 2 * 256 byte symbols - 2 special tokens
CLIP_CONTEXT_LENGTH = 77
START_TOKEN, END_TOKEN = "<|startoftext|>", "<|endoftext|>"

# Stable Diffusion 1.5's scheduler_config.json, so schedulers built from it behave as they do for SD 1.5.
SD15_SCHEDULER = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
                  "num_train_timesteps": 1000, "set_alpha_to_one": False, "skip_prk_steps": True,
                  "steps_offset": 1, "clip_sample": False}


def byte_symbols() -> list[str]:
    """CLIP's (and GPT-2's) one printable character per byte, in vocabulary order: the printable Latin-1
    bytes stand for themselves; the other bytes (controls, space, ...) take code points 256 onwards."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    return [chr(byte) for byte in printable] + [chr(256 + i) for i in range(256 - len(printable))]


def clip_merges() -> list[str]:
    """CLIP's BPE merges ("a b" per line, highest priority first) from the file open_clip ships."""
    bpe_file = importlib.resources.files("open_clip") / CLIP_BPE_FILE
    lines = gzip.decompress(bpe_file.read_bytes()).decode("utf-8").split("\n")
    return lines[1:1 + CLIP_MERGE_COUNT]  # line 0 is a header


def write_clip_tokenizer_files(folder: Path) -> Path:
    """vocab.json and merges.txt of CLIP's tokenizer, token ids in CLIP's order; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    merges = clip_merges()
    symbols = byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols] + [m.replace(" ", "") for m in merges] + [START_TOKEN, END_TOKEN]
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(tokens)}, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return folder


def clip_tokenizer(folder: Path, context_length: int = CLIP_CONTEXT_LENGTH) -> CLIPTokenizer:
    """Stable Diffusion's tokenizer (77 tokens, padded with the end token), built from generated files; a
    shorter context_length for text encoders trained with one."""
    return CLIPTokenizer.from_pretrained(write_clip_tokenizer_files(folder), model_max_length=context_length)


def tiny_unet(seed: int = 0, block_out_channels: tuple[int, int] = (16, 32)) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        block_out_channels=block_out_channels,
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=4,
        norm_num_groups=8,
    )


def tiny_vae(seed: int = 0) -> AutoencoderKL:
    """Four blocks, so that latents are 1/8 of the image size as in Stable Diffusion."""
    torch.manual_seed(seed)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=(8, 8, 16, 16),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=64,
    )


def tiny_text_encoder(tokenizer: CLIPTokenizer, seed: int = 0) -> CLIPTextModel:
    torch.manual_seed(seed)
    return CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=CLIP_CONTEXT_LENGTH,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    ))


def build_tiny_sd_pipeline(folder: Path, seed: int = 0, unet_channels: tuple[int, int] = (16, 32)) -> Path:
    """Save a random-weight StableDiffusionPipeline (64x64 images by default) with `save_pretrained`;
    wider `unet_channels` make a bigger model, as benchmarks want."""
    folder = Path(folder)
    tokenizer = clip_tokenizer(folder / "tokenizer")
    pipeline = StableDiffusionPipeline(
        vae=tiny_vae(seed),
        text_encoder=tiny_text_encoder(tokenizer, seed),
        tokenizer=tokenizer,
        unet=tiny_unet(seed, unet_channels),
        scheduler=PNDMScheduler.from_config(SD15_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipeline.save_pretrained(folder)
    return folder


def build_sd15_architecture_pipeline(folder: Path, seed: int = 0) -> Path:
    """Save a random-weight pipeline with Stable Diffusion 1.5's architecture and configs (UNet 860M, CLIP
    ViT-L/14 text encoder 123M, VAE 84M parameters) in float16: what its speed is measured on where the
    real weights cannot be downloaded."""
    folder = Path(folder)
    tokenizer = clip_tokenizer(folder / "tokenizer")
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(sample_size=64, cross_attention_dim=768, attention_head_dim=8)
    vae = AutoencoderKL(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
                        up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4,
                        sample_size=512)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), max_position_embeddings=CLIP_CONTEXT_LENGTH, hidden_size=768,
        intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, projection_dim=768,
        hidden_act="quick_gelu", bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id))
    pipeline = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                       scheduler=PNDMScheduler.from_config(SD15_SCHEDULER), safety_checker=None,
                                       feature_extractor=None, requires_safety_checker=False)
    pipeline.to(torch.float16).save_pretrained(folder)
    return folder
