"""The text-to-image trainer: captions in both conventions, LoRA, from-scratch text-to-image, resume, and a model
that learns what its captions say."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image
from safetensors.torch import load_file

from diffusion_app.service.studio import Studio
from diffusion_app.service.generation.text2img import TextToImageRequest, generate
from diffusion_app.settings import Settings
from diffusion_app.tiny_sd import build_tiny_sd_pipeline
from diffusion_app.training.captions import match_captions, token_count
from diffusion_app.training.checkpoints import ProgressLog
from diffusion_app.training.config import TrainingConfig
from diffusion_app.training.data import folder_items
from diffusion_app.training.sources import read_items
from diffusion_app.training.train import train
from text_training_data import BLUE, CONCEPTS, RED, base_with_trained_vae, squares_folder

FAST = dict(train_batch_size=4, lr_warmup_steps=1, log_every_steps=1, save_images_steps=0, num_sample_images=2,
            sample_inference_steps=2, checkpointing_steps=1000, use_ema=False, mixed_precision="no")


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory) -> Path:
    return build_tiny_sd_pipeline(tmp_path_factory.mktemp("base") / "tiny-sd", seed=3)


@pytest.fixture(scope="module")
def squares(tmp_path_factory) -> Path:
    return squares_folder(tmp_path_factory.mktemp("squares") / "data", count=8, size=64)


def progress(output: Path) -> list[dict]:
    return [json.loads(line) for line in (output / "progress.jsonl").read_text().splitlines()]


def test_captions_from_metadata_txt_files_and_an_instance_prompt(tmp_path):
    for name in ("a", "b", "c", "d"):
        Image.new("RGB", (8, 8), "red").save(tmp_path / f"{name}.png")
    (tmp_path / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "text": "from metadata"}) + "\n")
    (tmp_path / "b.txt").write_text("  from a\ntext file ")
    (tmp_path / "a.txt").write_text("metadata wins over this")
    (tmp_path / "c.txt").write_bytes(b"\xff\xfe not utf-8")
    assert folder_items(tmp_path).captions == ["from metadata", "from a text file", None, None]
    config = TrainingConfig(train_data_dir=str(tmp_path), instance_prompt="a photo of sks dog")
    assert read_items(config).captions == ["from metadata", "from a text file", "a photo of sks dog",
                                           "a photo of sks dog"]


def test_unusable_captions_are_reported_with_their_reason():
    images = [PurePosixPath(name) for name in ("x/a.png", "x/b.png", "x/c.png", "x/d.png")]
    texts = {
        PurePosixPath("x/metadata.jsonl"): b'{"file_name": "a.png", "text": "ok"}\nnot json\n{"text": "no name"}\n'
                                           b'{"file_name": "d.png", "text": "   "}\n',
        PurePosixPath("x/b.txt"): b"\xff\xfe\x00",
        PurePosixPath("x/c.txt"): b"   \n",
    }
    captions, problems = match_captions(images, texts)
    assert captions == ["ok", None, None, None]
    reasons = {problem.name: problem.reason for problem in problems}
    assert reasons["x/metadata.jsonl line 2"].startswith("not JSON")
    assert reasons["x/metadata.jsonl line 3"] == "has no file_name"
    assert reasons["x/metadata.jsonl line 4 (d.png)"] == "empty caption"
    assert reasons["x/b.txt"].startswith("not UTF-8 text")
    assert reasons["x/c.txt"] == "empty caption"
    assert token_count("a red square") == 5 and token_count("word " * 100) > 77


def test_lora_lowers_the_loss_changes_the_images_and_weight_zero_is_the_base(tiny_sd, squares, tmp_path):
    output = tmp_path / "lora"
    folder = train(TrainingConfig(mode="lora", train_data_dir=str(squares), output_dir=str(output),
                                  pretrained_model=str(tiny_sd), resolution=64, max_train_steps=60,
                                  learning_rate=5e-3, lora_rank=8, lora_alpha=8, **{**FAST, "log_every_steps": 10}))
    losses = [record["loss"] for record in progress(output) if "loss" in record]
    assert losses[-1] < losses[0]
    assert json.loads((folder / "lora.json").read_text())["base_model"] == str(tiny_sd)
    assert (folder / "pytorch_lora_weights.safetensors").is_file()

    pipeline = StableDiffusionPipeline.from_pretrained(tiny_sd, safety_checker=None)
    pipeline.set_progress_bar_config(disable=True)

    def image() -> np.ndarray:
        return np.asarray(pipeline("a red square", num_inference_steps=4, height=64, width=64,
                                   generator=torch.Generator().manual_seed(0)).images[0], dtype=float)

    base = image()
    pipeline.load_lora_weights(folder, adapter_name="squares")
    assert np.abs(image() - base).mean() > 1.0
    pipeline.set_adapters(["squares"], [0.0])
    assert np.array_equal(image(), base)


def stop_at_step(monkeypatch, step: int) -> None:
    """SIGTERM to this process (the trainer runs in it) the moment the progress log records `step`, as Cancel
    does; at a fixed step, so the test always stops where it means to (mid-epoch here)."""
    write = ProgressLog.write

    def write_then_stop(log, **record):
        write(log, **record)
        if record.get("step") == step and "loss" in record:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(ProgressLog, "write", write_then_stop)


def test_lora_resumed_from_a_checkpoint_equals_an_uninterrupted_run(tiny_sd, squares, tmp_path, monkeypatch):
    """Stopped mid-epoch (8 images in batches of 4: step 3 is half way through the second epoch), with random
    flips: the resumed run must flip the images the uninterrupted one did."""
    def run(output: Path) -> Path | None:
        return train(TrainingConfig(mode="lora", train_data_dir=str(squares), output_dir=str(output),
                                    pretrained_model=str(tiny_sd), resolution=64, max_train_steps=8,
                                    learning_rate=1e-3, random_flip=True, snr_gamma=5.0, resume_from_checkpoint="latest",
                                    **{**FAST, "use_ema": True}))

    straight = run(tmp_path / "straight")
    with monkeypatch.context() as patch:
        stop_at_step(patch, 3)
        assert run(tmp_path / "interrupted") is None
    assert (tmp_path / "interrupted" / "checkpoint-3").is_dir()
    checkpoint = next((tmp_path / "interrupted").glob("checkpoint-*"))
    assert sorted(path.name for path in checkpoint.glob("*lora*")) == ["unet_lora.safetensors"]
    assert not list(checkpoint.glob("model*.safetensors"))  # the frozen base is not in the checkpoint
    resumed = run(tmp_path / "interrupted")
    expected = load_file(straight / "pytorch_lora_weights.safetensors")
    actual = load_file(resumed / "pytorch_lora_weights.safetensors")
    assert expected.keys() == actual.keys()
    assert all(torch.allclose(expected[key], actual[key], atol=1e-6) for key in expected)


def test_text_to_image_from_scratch_saves_a_pipeline_the_app_generates_with(tiny_sd, squares, tmp_path):
    folder = train(TrainingConfig(mode="text-to-image", train_data_dir=str(squares), output_dir=str(tmp_path / "t2i"),
                                  pretrained_model=str(tiny_sd), unet_from_scratch=True, block_out_channels=[16, 32],
                                  resolution=64, max_train_steps=3, save_precision="fp16", **FAST))
    pipeline = StableDiffusionPipeline.from_pretrained(folder)
    assert pipeline.unet.config.block_out_channels == [16, 32]
    weights = load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")
    assert {tensor.dtype for tensor in weights.values()} == {torch.float16}
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "squares").symlink_to(folder)
    studio = Studio(Settings(models_dir=tmp_path / "models", data_dir=tmp_path / "data", offline=True))
    images, _ = generate(studio, TextToImageRequest("squares", "a red square", steps=2, width=64, height=64, seed=1))
    assert images[0].size == (64, 64)


def test_a_trained_model_draws_what_its_captions_say(tmp_path):
    """Red and blue squares with their captions: after training, each prompt draws its own colour."""
    data = squares_folder(tmp_path / "data")
    base = base_with_trained_vae(tmp_path, data)
    folder = train(TrainingConfig(mode="text-to-image", train_data_dir=str(data), output_dir=str(tmp_path / "run"),
                                  pretrained_model=str(base), unet_from_scratch=True, block_out_channels=[32, 64],
                                  resolution=32, train_batch_size=8, max_train_steps=400, learning_rate=2e-3,
                                  lr_warmup_steps=5, log_every_steps=50, save_images_steps=0, checkpointing_steps=1000,
                                  use_ema=False, mixed_precision="no"))
    pipeline = StableDiffusionPipeline.from_pretrained(folder)
    pipeline.set_progress_bar_config(disable=True)
    for prompt, colour in CONCEPTS.items():
        other = BLUE if colour == RED else RED
        images = pipeline([prompt] * 4, num_inference_steps=20, guidance_scale=3, height=32, width=32,
                          generator=[torch.Generator().manual_seed(i) for i in range(4)]).images
        means = [np.asarray(image, dtype=float).mean(axis=(0, 1)) for image in images]
        closer = [np.abs(mean - colour).mean() < np.abs(mean - other).mean() for mean in means]
        assert sum(closer) >= 3, (prompt, means)


def test_a_datasets_dataset_trains_like_a_folder(squares, tmp_path):
    """A local dataset folder loaded through `datasets` (the path a hub id takes once downloaded)."""
    items = read_items(TrainingConfig(dataset_name=str(squares), dataset_split="train", caption_column="text"))
    assert len(items.images) == 8 and items.captions[:2] == ["a red square", "a blue square"]
    folder = train(TrainingConfig(mode="ddpm", dataset_name=str(squares), caption_column=None,
                                  output_dir=str(tmp_path / "run"), resolution=16, block_out_channels=[8, 16],
                                  layers_per_block=1, attention=False, max_train_steps=2, **FAST))
    assert (folder / "model_index.json").is_file()
    with pytest.raises(ValueError, match="no caption column 'caption'"):
        read_items(TrainingConfig(dataset_name=str(squares), caption_column="caption"))
    with pytest.raises(ValueError, match="Could not load split"):
        read_items(TrainingConfig(dataset_name=str(tmp_path / "missing")))


def test_vae_and_clip_modes_save_what_their_libraries_load(squares, tmp_path):
    import open_clip
    from diffusers import AutoencoderKL

    vae = train(TrainingConfig(mode="vae", train_data_dir=str(squares), output_dir=str(tmp_path / "vae"), resolution=32,
                               block_out_channels=[8, 16], layers_per_block=1, max_train_steps=2, **FAST))
    loaded = AutoencoderKL.from_pretrained(vae)
    assert loaded.config.scaling_factor != 0.18215 and loaded.config.latent_channels == 4
    config = tmp_path / "tiny-clip.json"
    config.write_text(json.dumps({"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 1, "width": 32,
                                                                  "head_width": 16, "patch_size": 8},
                                  "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2,
                                               "layers": 1}}))
    clip = train(TrainingConfig(mode="clip", train_data_dir=str(squares), output_dir=str(tmp_path / "clip"),
                                clip_config=str(config), resolution=32, max_train_steps=2, **FAST))
    model, _, _ = open_clip.create_model_and_transforms(f"local-dir:{clip}")
    tokens = open_clip.get_tokenizer(f"local-dir:{clip}")(["a red square"])
    assert tokens.shape == (1, 16) and model.encode_text(tokens).shape == (1, 16)


@torch.no_grad()
def latents_and_reconstruction_errors(vae, teacher, pixels: torch.Tensor) -> tuple[float, float]:
    """How far `vae`'s latents are from `teacher`'s, and how far it decodes the teacher's latents from the images."""
    target = teacher.encode(pixels).latent_dist.mean
    latent_error = (vae.encode(pixels).latent_dist.mean - target).abs().mean().item()
    return latent_error, (vae.decode(target).sample - pixels).abs().mean().item()


def test_vae_latents_from_refits_a_vae_and_keeps_its_latents(squares, tmp_path):
    from diffusers import AutoencoderKL
    from diffusers.image_processor import VaeImageProcessor

    from diffusion_app.training.modes.vae import regrouped

    torch.manual_seed(0)
    teacher = AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2,
                            up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, norm_num_groups=8,
                            sample_size=32, scaling_factor=0.5).eval()  # one channel a group: the old flaw
    teacher.save_pretrained(tmp_path / "teacher")
    refit = train(TrainingConfig(mode="vae", vae_latents_from=str(tmp_path / "teacher"), train_data_dir=str(squares),
                                 output_dir=str(tmp_path / "refit"), resolution=32, max_train_steps=100,
                                 learning_rate=3e-3, **FAST))

    before = regrouped(teacher)  # where training starts: the teacher's weights, regrouped
    after = AutoencoderKL.from_pretrained(refit)
    assert after.config.norm_num_groups == 2 and after.config.scaling_factor == 0.5
    pixels = VaeImageProcessor().preprocess([Image.open(path) for path in sorted(squares.glob("*.png"))])
    latent_before, pixels_before = latents_and_reconstruction_errors(before.eval(), teacher, pixels)
    latent_after, pixels_after = latents_and_reconstruction_errors(after.eval(), teacher, pixels)
    assert latent_after < 0.5 * latent_before and pixels_after < 0.75 * pixels_before
    with pytest.raises(ValueError, match="vae_latents_from refits a trained VAE"):
        TrainingConfig(mode="vae", train_data_dir=str(squares), vae_latents_from=str(tmp_path / "teacher"),
                       pretrained_model=str(tmp_path / "teacher")).validate()
