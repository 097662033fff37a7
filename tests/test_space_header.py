"""What the README's Space header switches on holds: its sdk_version is the gradio that requirements.txt pins,
its `models:` are what it preloads, and each `preload_from_hub` file list is what the loaders read. The Stable
Diffusion list is checked by loading: a Hugging Face cache holding exactly those files (tiny weights, the real
names) must give a StableDiffusionPipeline with every component, offline, as the Space's start-up loads it."""

from __future__ import annotations

import re
from pathlib import Path

import huggingface_hub
import pytest
import yaml
import torch
from diffusers import AutoencoderTiny, StableDiffusionPipeline
from diffusers.pipelines.stable_diffusion import StableDiffusionSafetyChecker
from transformers import CLIPConfig, CLIPImageProcessor

from diffusion_app.catalog import TINY_AUTOENCODER, build_catalog
from diffusion_app.service.models.loading import load_tiny_autoencoder
from diffusion_app.tiny_sd import build_tiny_sd_pipeline
from running_app import REPO_ROOT

HEADER = yaml.safe_load((REPO_ROOT / "README.md").read_text().split("---")[1])
PRELOAD = dict(entry.split(" ", 1) for entry in HEADER["preload_from_hub"])
SD_REPO = "stable-diffusion-v1-5/stable-diffusion-v1-5"
TAESD_REPO = "madebyollin/taesd"


def test_the_header_pins_the_gradio_that_requirements_install():
    pin = re.search(r"^gradio\[[\w,]+\]==([\d.]+)$", (REPO_ROOT / "requirements.txt").read_text(), flags=re.M)
    assert pin and HEADER["sdk_version"] == pin[1]
    assert HEADER["sdk"] == "gradio" and HEADER["app_file"] == "app.py" and HEADER["hf_oauth"] is True


def test_the_header_preloads_the_models_it_lists():
    assert set(PRELOAD) == set(HEADER["models"]) == {SD_REPO, TAESD_REPO, "timm/vit_base_patch32_clip_224.openai"}


def test_the_clip_preload_is_the_file_open_clip_reads_for_openai_weights():
    import diffusion_app.torchvision_compat  # noqa: F401  (before open_clip imports torchvision)
    from open_clip import pretrained

    hub = pretrained.get_pretrained_cfg("ViT-B-32", "openai")["hf_hub"].rstrip("/")
    safe_names = [name for name in pretrained._get_safe_alternatives(pretrained.HF_WEIGHTS_NAME)]
    assert PRELOAD[hub].split(",") == safe_names[:1]


def tiny_sd15_snapshot(folder):
    """A tiny pipeline saved with the components and file names Stable Diffusion 1.5's repository has."""
    build_tiny_sd_pipeline(folder)
    clip = CLIPConfig(text_config={"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
                                   "num_attention_heads": 2, "projection_dim": 8},
                      vision_config={"hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
                                     "num_attention_heads": 2, "image_size": 32, "patch_size": 16},
                      projection_dim=8)
    pipeline = StableDiffusionPipeline.from_pretrained(folder, safety_checker=StableDiffusionSafetyChecker(clip),
                                                       feature_extractor=CLIPImageProcessor(crop_size=32, size=32))
    pipeline.save_pretrained(folder)
    return folder


def cached_snapshot(cache: Path, repo: str, saved: Path) -> Path:
    """A Hugging Face cache holding the files the header preloads for `repo`, copied from a saved tiny model."""
    snapshot = cache / f"models--{repo.replace('/', '--')}" / "snapshots" / ("0" * 40)
    for name in (name for name in PRELOAD[repo].split(",") if (saved / name).exists()):
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).write_bytes((saved / name).read_bytes())
    (snapshot.parent.parent / "refs").mkdir()
    (snapshot.parent.parent / "refs" / "main").write_text("0" * 40)
    return snapshot


def test_the_stable_diffusion_preload_is_every_file_from_pretrained_reads(tmp_path, monkeypatch):
    saved = tiny_sd15_snapshot(tmp_path / "saved")
    assert "tokenizer/special_tokens_map.json" in PRELOAD[SD_REPO]  # in the real repository; transformers 5 writes none
    snapshot = cached_snapshot(tmp_path / "hf" / "hub", SD_REPO, saved)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    pipeline = StableDiffusionPipeline.from_pretrained(SD_REPO, cache_dir=tmp_path / "hf" / "hub",
                                                       local_files_only=True)
    assert pipeline.safety_checker is not None and pipeline.feature_extractor is not None
    with pytest.raises(OSError):  # and one file fewer does not load: the list is not merely generous
        (snapshot / "unet" / "diffusion_pytorch_model.safetensors").unlink()
        StableDiffusionPipeline.from_pretrained(SD_REPO, cache_dir=tmp_path / "hf" / "hub", local_files_only=True)


def test_the_taesd_preload_loads_through_the_catalog_offline(tmp_path, monkeypatch):
    """The catalog's madebyollin/taesd entry loads from a cache holding exactly the header's files, as the Space's
    start-up preloads it (a tiny AutoencoderTiny under the real names)."""
    AutoencoderTiny(encoder_block_out_channels=(8,), decoder_block_out_channels=(8,), num_encoder_blocks=(1,),
                    num_decoder_blocks=(1,)).save_pretrained(tmp_path / "saved")
    cached_snapshot(tmp_path / "hf" / "hub", TAESD_REPO, tmp_path / "saved")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    entry = build_catalog([]).get(TAESD_REPO)
    assert entry.kind == TINY_AUTOENCODER and entry.base_model == SD_REPO and entry.available_offline()
    assert isinstance(load_tiny_autoencoder(entry, "cpu", torch.float32, offline=True), AutoencoderTiny)
