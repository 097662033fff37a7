"""The trainer on tiny generated datasets: a few CPU steps each."""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import DDPMPipeline
from PIL import Image
from safetensors.torch import load_file

from diffusion_app.__main__ import main
from diffusion_app.core.class_conditional import ClassConditionalPipeline
from diffusion_app.service.generation.sampling import SamplingRequest, sample
from diffusion_app.service.studio import Studio
from diffusion_app.settings import Settings
from diffusion_app.training.config import TrainingConfig
from diffusion_app.training.modes.ddpm import drop_labels
from diffusion_app.training.train import train

REPO_ROOT = Path(__file__).resolve().parent.parent
TINY = dict(resolution=16, channels=3, block_out_channels=[8, 16], layers_per_block=1, attention=False,
            train_batch_size=4, lr_warmup_steps=2, sample_inference_steps=2, num_sample_images=4,
            log_every_steps=1, use_ema=True)


def make_dataset(folder: Path, classes: list[str] | None = None, count: int = 12) -> Path:
    rng = np.random.default_rng(0)
    for index in range(count):
        target = folder / classes[index % len(classes)] if classes else folder
        target.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)  # not square: cropped to 16x16
        Image.fromarray(pixels).save(target / f"{index}.png")
    return folder


def progress(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "progress.jsonl").read_text().splitlines()]


def test_unconditional_run_gives_a_pipeline_diffusers_and_the_app_load(tmp_path):
    data = make_dataset(tmp_path / "data")
    out = tmp_path / "run"
    folder = train(TrainingConfig(train_data_dir=str(data), output_dir=str(out), max_train_steps=4,
                                  checkpointing_steps=2, checkpoints_total_limit=1, random_flip=True, **TINY))
    assert folder == out / "pipeline"
    pipeline = DDPMPipeline.from_pretrained(folder)
    assert pipeline.unet.config.sample_size == 16
    assert [p.name for p in out.glob("checkpoint-*")] == ["checkpoint-4"]  # older ones pruned
    assert list((out / "samples").glob("*.png")) and list((out / "logs").rglob("events.out.tfevents.*"))
    records = progress(out)
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == [1, 2, 3, 4]
    assert all(r["loss"] > 0 and r["images_per_s"] > 0 and r["lr"] >= 0 for r in steps)
    assert steps[0]["lr"] > 0  # warmup, then cosine decay to 0 at the last step
    assert records[-1]["event"] == "finished"

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mine").symlink_to(folder)
    studio = Studio(Settings(models_dir=tmp_path / "models", data_dir=tmp_path / "d", offline=True))
    images, _ = sample(studio, SamplingRequest("mine", steps=2, seed=0))
    assert images[0].size == (16, 16)


def test_class_subfolders_train_a_class_conditional_pipeline(tmp_path):
    data = make_dataset(tmp_path / "data", classes=["cat", "dog", "fox"])
    folder = train(TrainingConfig(train_data_dir=str(data), output_dir=str(tmp_path / "run"), max_train_steps=2,
                                  save_precision="fp16", **{**TINY, "channels": 1}))
    pipeline = ClassConditionalPipeline.from_pretrained(folder)
    assert pipeline.class_names == ["cat", "dog", "fox"]
    # Trained with class dropout (the default): one more embedding, the "no class" label of CFG.
    assert pipeline.unet.config.num_class_embeds == 4 and pipeline.null_class_label == 3
    assert pipeline.unet.config.in_channels == 1
    weights = load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")
    assert {tensor.dtype for tensor in weights.values()} == {torch.float16}
    images = pipeline([2, 0], num_inference_steps=2, guidance_scale=3.0)
    assert [image.mode for image in images] == ["L", "L"]


def test_without_class_dropout_there_is_no_null_class(tmp_path):
    data = make_dataset(tmp_path / "data", classes=["cat", "dog"])
    folder = train(TrainingConfig(train_data_dir=str(data), output_dir=str(tmp_path / "run"), max_train_steps=1,
                                  class_dropout_prob=0.0, **TINY))
    pipeline = ClassConditionalPipeline.from_pretrained(folder)
    assert pipeline.unet.config.num_class_embeds == 2 and pipeline.null_class_label is None
    with pytest.raises(ValueError, match="needs a class-conditional model trained with a null class"):
        pipeline([0], num_inference_steps=2, guidance_scale=3.0)


def test_drop_labels_replaces_the_requested_share_by_the_null_label():
    torch.manual_seed(0)
    labels = torch.arange(10).repeat(1000)
    dropped = drop_labels(labels, num_classes=10, dropout_prob=0.1)
    is_null = dropped == 10
    assert 0.08 < is_null.float().mean() < 0.12
    assert torch.equal(dropped[~is_null], labels[~is_null])
    assert torch.equal(drop_labels(labels, 10, 0.0), labels)


def test_fine_tune_continues_from_a_pipeline(tmp_path):
    data = make_dataset(tmp_path / "data")
    base = train(TrainingConfig(train_data_dir=str(data), output_dir=str(tmp_path / "base"), max_train_steps=1,
                                **TINY))
    tuned = train(TrainingConfig(train_data_dir=str(data), output_dir=str(tmp_path / "tuned"), max_train_steps=1,
                                 pretrained_model=str(base), **TINY))
    assert DDPMPipeline.from_pretrained(tuned).unet.config.block_out_channels == [8, 16]


def start_trainer(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "diffusion_app", "train", *args], cwd=REPO_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def cli_args(data: Path, out: Path, steps: int) -> list[str]:
    flags = [f"--train_data_dir={data}", f"--output_dir={out}", f"--max_train_steps={steps}",
             "--checkpointing_steps=1000", "--save_images_steps=0", "--resume_from_checkpoint=latest"]
    return flags + [f"--{key}={value}" if not isinstance(value, list) else f"--{key}={value[0]}"
                    for key, value in TINY.items() if key != "block_out_channels"] + \
        ["--block_out_channels", *map(str, TINY["block_out_channels"])]


def test_sigterm_checkpoints_and_resume_continues_the_same_curve(tmp_path):
    data = make_dataset(tmp_path / "data", count=40)
    total = 40
    reference = tmp_path / "reference"
    assert start_trainer(*cli_args(data, reference, total)).wait(timeout=300) == 0

    interrupted = tmp_path / "interrupted"
    process = start_trainer(*cli_args(data, interrupted, total))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        log = interrupted / "progress.jsonl"
        if log.exists() and any(r.get("step", 0) >= 5 for r in progress(interrupted)):
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=120)[0]
    assert process.returncode == 0, output
    stopped = progress(interrupted)[-1]
    assert stopped["event"] == "stopped" and stopped["step"] < total, "stop came too late to test resuming"
    assert (interrupted / f"checkpoint-{stopped['step']}").is_dir()

    assert start_trainer(*cli_args(data, interrupted, total)).wait(timeout=300) == 0
    resumed = {r["step"]: r["loss"] for r in progress(interrupted) if "loss" in r}
    expected = {r["step"]: r["loss"] for r in progress(reference) if "loss" in r}
    assert sorted(resumed) == list(range(1, total + 1))  # every step once: no gap, no repeat
    assert resumed == pytest.approx(expected, rel=1e-4)  # the same curve as an uninterrupted run


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"train_data_dir": "/nonexistent/folder"}, "does not exist"),
        ({"train_batch_size": 0}, "train_batch_size must be at least 1"),
        ({"resolution": 18, "block_out_channels": [8, 16, 32]}, "cannot be halved evenly .* multiple of 4"),
        ({"channels": 2}, "channels must be 1"),
        ({"mixed_precision": "fp8"}, "mixed_precision must be one of"),
        ({"class_dropout_prob": 1.0}, "class_dropout_prob must be at least 0 and below 1"),
    ],
)
def test_bad_configs_are_refused_before_training(tmp_path, changes, message):
    config = {**TINY, "train_data_dir": str(make_dataset(tmp_path / "data", count=2)),
              "output_dir": str(tmp_path / "run"), **changes}
    with pytest.raises(ValueError, match=message):
        train(TrainingConfig(**config))
    assert not (tmp_path / "run" / "progress.jsonl").exists()


def test_folder_without_images_is_refused(tmp_path):
    (tmp_path / "empty" / "cats").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(ValueError, match="No images"):
        train(TrainingConfig(train_data_dir=str(tmp_path / "empty"), output_dir=str(tmp_path / "run"), **TINY))


def test_cli_reports_config_errors_in_one_line(tmp_path, capsys):
    config = tmp_path / "job.json"
    config.write_text(json.dumps({"train_data_dir": str(tmp_path), "learning_rat": 1}))
    assert main(["train", "--config", str(config)]) == 2
    assert capsys.readouterr().err.strip() == "error: Unknown training option(s) in " + str(config) + ": learning_rat."
