"""The trainer, for unconditional and class-conditional UNet2DModel pipelines.

    accelerate launch -m diffusion_app.training.train --config job.json   (any number of processes)
    python -m diffusion_app train --config job.json                        (one process)

It follows the diffusers training examples (train_unconditional.py): accelerate for devices,
mixed precision and gradient accumulation; EMA weights; warmup + cosine learning rate; checkpoints
that resume; TensorBoard logs. Progress goes to <output_dir>/progress.jsonl, one JSON object a line,
for the app's jobs panel. SIGTERM saves a checkpoint and exits cleanly.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
from diffusers import DDIMScheduler, DDPMPipeline, DDPMScheduler, UNet2DModel
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..core.denoising import denoise, initial_noise, to_pil
from ..core.class_conditional import ClassConditionalPipeline
from ..core.grid import image_grid
from .config import TrainingConfig, add_arguments, config_from_args
from .data import ImageDataset

CHECKPOINT_PREFIX = "checkpoint-"


class ProgressLog:
    """Append-only JSON lines that the jobs panel reads while training runs."""

    def __init__(self, path: Path, enabled: bool):
        self.path = path
        self.enabled = enabled

    def write(self, **record) -> None:
        if self.enabled:
            with self.path.open("a") as log:
                log.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")

    def drop_steps_after(self, step: int) -> None:
        """On resume, forget what was logged after the checkpoint: those steps are trained again."""
        if not (self.enabled and self.path.exists()):
            return
        lines = self.path.read_text().splitlines()
        kept = [line for line in lines if json.loads(line).get("step", 0) <= step]
        self.path.write_text("".join(line + "\n" for line in kept))


class StopRequest:
    """Set by SIGTERM; the loop checkpoints and exits at the end of the current step."""

    def __init__(self):
        self.requested = False
        signal.signal(signal.SIGTERM, self._request)

    def _request(self, signum, frame) -> None:
        self.requested = True


def build_unet(config: TrainingConfig, num_classes: int | None) -> UNet2DModel:
    """A UNet2DModel; class-conditional ones trained with class dropout get one more embedding, for "no class"."""
    num_class_embeds = num_classes + (config.class_dropout_prob > 0) if num_classes else None
    levels = len(config.block_out_channels)
    attention_last = config.attention and levels > 1
    down = ["DownBlock2D"] * (levels - 1) + ["AttnDownBlock2D" if attention_last else "DownBlock2D"]
    up = ["AttnUpBlock2D" if attention_last else "UpBlock2D"] + ["UpBlock2D"] * (levels - 1)
    return UNet2DModel(
        sample_size=config.resolution,
        in_channels=config.channels,
        out_channels=config.channels,
        block_out_channels=tuple(config.block_out_channels),
        layers_per_block=config.layers_per_block,
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        norm_num_groups=min(32, config.block_out_channels[0]),
        num_class_embeds=num_class_embeds,
    )


def load_model(config: TrainingConfig, num_classes: int | None) -> tuple[UNet2DModel, DDPMScheduler]:
    """A fresh UNet and noise schedule, or those of the pipeline being fine-tuned."""
    if config.pretrained_model is None:
        scheduler = DDPMScheduler(num_train_timesteps=config.num_train_timesteps, beta_schedule=config.beta_schedule,
                                  prediction_type=config.prediction_type)
        return build_unet(config, num_classes), scheduler
    if num_classes:
        raise ValueError("Fine-tuning starts from an unconditional pipeline: set class_conditional to false "
                         "or train a class-conditional model from scratch.")
    pipeline = DDPMPipeline.from_pretrained(config.pretrained_model)
    scheduler = DDPMScheduler.from_config(pipeline.scheduler.config, prediction_type=config.prediction_type)
    return pipeline.unet, scheduler


def drop_labels(labels: torch.Tensor, num_classes: int, dropout_prob: float) -> torch.Tensor:
    """Replace a random share of the labels by the "no class" label, index num_classes (as in DiT)."""
    dropped = torch.rand(labels.shape, device=labels.device) < dropout_prob
    return torch.where(dropped, torch.full_like(labels, num_classes), labels)


def diffusion_loss(unet, noise_scheduler: DDPMScheduler, clean: torch.Tensor,
                   labels: torch.Tensor | None) -> torch.Tensor:
    """Noise a batch at random timesteps and score the UNet's prediction (epsilon, v or x0)."""
    noise = torch.randn_like(clean)
    timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (clean.shape[0],), device=clean.device)
    noisy = noise_scheduler.add_noise(clean, noise, timesteps)
    prediction = unet(noisy, timesteps, class_labels=labels).sample
    prediction_type = noise_scheduler.config.prediction_type
    if prediction_type == "epsilon":
        target = noise
    elif prediction_type == "v_prediction":
        target = noise_scheduler.get_velocity(clean, noise, timesteps)
    else:
        target = clean
    return F.mse_loss(prediction.float(), target.float())


def attention_kernels(accelerator: Accelerator) -> contextlib.AbstractContextManager:
    """Which scaled-dot-product attention kernel trains. On the CPU in bfloat16, the plain matmul-and-softmax
    one (SDPA's math backend): PyTorch's CPU flash-attention backward in bfloat16 took 57 ms a call on the
    openmoji UNet's 64-token attention at batch 64, a third of the whole step, and left bf16 training slower
    than float32. Elsewhere PyTorch chooses."""
    if accelerator.device.type == "cpu" and accelerator.mixed_precision == "bf16":
        return sdpa_kernel(SDPBackend.MATH)
    return contextlib.nullcontext()


def sample_grid(unet, noise_scheduler, config: TrainingConfig, class_names: list[str] | None):
    """A fixed-seed grid of DDIM samples; class-conditional grids get one row per class."""
    count = config.num_sample_images
    labels = None
    if class_names:
        per_class = max(1, count // len(class_names))
        labels = torch.arange(len(class_names), device=unet.device).repeat_interleave(per_class)
        count = len(labels)
    generators = [torch.Generator("cpu").manual_seed(config.seed + i) for i in range(count)]
    scheduler = DDIMScheduler.from_config(noise_scheduler.config)
    sample = initial_noise(unet, generators)
    for step in denoise(unet, scheduler, sample, config.sample_inference_steps, generators, class_labels=labels):
        sample = step.sample
    columns = count // len(class_names) if class_names else math.ceil(math.sqrt(count))
    return image_grid(to_pil(sample), columns)


def latest_checkpoint(output_dir: Path) -> Path | None:
    checkpoints = sorted(output_dir.glob(CHECKPOINT_PREFIX + "*"), key=checkpoint_step)
    return checkpoints[-1] if checkpoints else None


def checkpoint_step(path: Path) -> int:
    return int(path.name.removeprefix(CHECKPOINT_PREFIX))


def save_checkpoint(accelerator: Accelerator, config: TrainingConfig, output_dir: Path, step: int) -> Path:
    """accelerator.save_state under a temporary name, renamed once complete (so a killed trainer never
    leaves half a checkpoint to resume from); then only the newest checkpoints_total_limit are kept."""
    path = output_dir / f"{CHECKPOINT_PREFIX}{step}"
    partial = output_dir / f".{path.name}.partial"
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(path, ignore_errors=True)
        partial.rename(path)
        if config.checkpoints_total_limit is not None:
            existing = sorted(output_dir.glob(CHECKPOINT_PREFIX + "*"), key=checkpoint_step)
            for old in existing[: max(0, len(existing) - config.checkpoints_total_limit)]:
                shutil.rmtree(old)
    return path


def save_pipeline(unet: UNet2DModel, noise_scheduler, config: TrainingConfig, class_names, output_dir: Path) -> Path:
    if config.save_precision == "fp16":
        unet = unet.to(torch.float16)
    pipeline = (ClassConditionalPipeline(unet=unet, scheduler=noise_scheduler, class_names=class_names)
                if class_names else DDPMPipeline(unet=unet, scheduler=noise_scheduler))
    folder = output_dir / "pipeline"
    pipeline.save_pretrained(folder, safe_serialization=True)
    return folder


def push_to_hub(folder: Path, repo_id: str) -> None:
    from huggingface_hub import create_repo, upload_folder

    token = os.environ.get("HF_TOKEN")
    create_repo(repo_id, token=token, exist_ok=True)
    upload_folder(repo_id=repo_id, folder_path=folder, token=token, commit_message="Upload trained pipeline")


def train(config: TrainingConfig) -> Path | None:
    """Run (or resume) training; returns the saved pipeline folder, or None when stopped early."""
    config.validate()
    dataset = ImageDataset(Path(config.train_data_dir), config.resolution, config.channels,
                           center_crop=config.center_crop, random_flip=config.random_flip,
                           class_conditional=config.class_conditional)
    class_names = dataset.class_names
    output_dir = Path(config.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)

    accelerator = Accelerator(
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        mixed_precision=config.mixed_precision,
        log_with="tensorboard",
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(output_dir / "logs")),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=config.seed),
    )
    set_seed(config.seed)
    progress = ProgressLog(output_dir / "progress.jsonl", accelerator.is_main_process)
    stop = StopRequest()
    if accelerator.is_main_process:
        (output_dir / "config.json").write_text(config.to_json())

    unet, noise_scheduler = load_model(config, len(class_names) if class_names else None)
    ema = EMAModel(unet.parameters(), decay=config.ema_max_decay, use_ema_warmup=True, inv_gamma=config.ema_inv_gamma,
                   power=config.ema_power, model_cls=UNet2DModel, model_config=unet.config) if config.use_ema else None
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2),
                                  weight_decay=config.adam_weight_decay, eps=config.adam_epsilon)
    # Its own generator: creating a loader iterator must not draw from the global RNG that
    # checkpoints restore, or a resumed run would see different noise than an uninterrupted one.
    dataloader = torch.utils.data.DataLoader(dataset, batch_size=config.train_batch_size, shuffle=True,
                                             num_workers=config.dataloader_num_workers,
                                             generator=torch.Generator().manual_seed(config.seed))
    steps_per_epoch = math.ceil(len(dataloader) / config.gradient_accumulation_steps)
    max_steps = config.max_train_steps or config.num_epochs * steps_per_epoch
    num_epochs = math.ceil(max_steps / steps_per_epoch)
    lr_scheduler = get_scheduler(config.lr_scheduler, optimizer,
                                 num_warmup_steps=config.lr_warmup_steps * accelerator.num_processes,
                                 num_training_steps=max_steps * accelerator.num_processes)
    unet, optimizer, dataloader, lr_scheduler = accelerator.prepare(unet, optimizer, dataloader, lr_scheduler)
    if ema is not None:
        ema.to(accelerator.device)
        accelerator.register_for_checkpointing(ema)
    accelerator.init_trackers("train", config={k: v for k, v in json.loads(config.to_json()).items()
                                               if isinstance(v, (int, float, str, bool))})

    global_step = 0
    checkpoint = output_dir / config.resume_from_checkpoint if config.resume_from_checkpoint else None
    if config.resume_from_checkpoint == "latest":
        checkpoint = latest_checkpoint(output_dir)
    if checkpoint is not None:
        if not checkpoint.is_dir():
            raise ValueError(f"No checkpoint at {checkpoint}.")
        accelerator.load_state(str(checkpoint))
        global_step = checkpoint_step(checkpoint)
        progress.drop_steps_after(global_step)
    first_epoch = global_step // steps_per_epoch
    batches_to_skip = (global_step % steps_per_epoch) * config.gradient_accumulation_steps
    images_per_step = config.train_batch_size * accelerator.num_processes * config.gradient_accumulation_steps
    progress.write(event="started", step=global_step, total_steps=max_steps, epochs=num_epochs,
                   images=len(dataset), classes=class_names)

    losses, window_start = [], time.perf_counter()
    for epoch in range(first_epoch, num_epochs):
        if global_step >= max_steps:
            break
        dataloader.set_epoch(epoch)
        batches = dataloader
        if epoch == first_epoch and batches_to_skip:
            batches = accelerator.skip_first_batches(dataloader, batches_to_skip)
        unet.train()
        for batch in batches:
            with accelerator.accumulate(unet), attention_kernels(accelerator):
                labels = batch.get("class_labels")
                if labels is not None and config.class_dropout_prob:
                    labels = drop_labels(labels, len(class_names), config.class_dropout_prob)
                loss = diffusion_loss(unet, noise_scheduler, batch["pixel_values"], labels)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(unet.parameters(), 1.0)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            losses.append(loss.detach().item())
            if not accelerator.sync_gradients:
                continue
            if ema is not None:
                ema.step(unet.parameters())
            global_step += 1

            if global_step % config.log_every_steps == 0 or global_step == max_steps:
                seconds = time.perf_counter() - window_start
                record = {"step": global_step, "epoch": epoch, "loss": sum(losses) / len(losses),
                          "lr": lr_scheduler.get_last_lr()[0],
                          "images_per_s": len(losses) / config.gradient_accumulation_steps * images_per_step / seconds}
                progress.write(**record)
                accelerator.log({k: v for k, v in record.items() if k != "step"}, step=global_step)
                losses, window_start = [], time.perf_counter()
            if global_step % config.checkpointing_steps == 0 or stop.requested:
                path = save_checkpoint(accelerator, config, output_dir, global_step)
                progress.write(event="checkpoint", step=global_step, path=str(path))
            if (accelerator.is_main_process and config.save_images_steps and global_step < max_steps
                    and global_step % config.save_images_steps == 0):
                write_samples(accelerator, unet, ema, noise_scheduler, config, class_names, output_dir, global_step, progress)
            if stop.requested:
                progress.write(event="stopped", step=global_step)
                accelerator.end_training()
                return None
            if global_step >= max_steps:
                break

    accelerator.wait_for_everyone()
    folder = None
    if accelerator.is_main_process:
        write_samples(accelerator, unet, ema, noise_scheduler, config, class_names, output_dir, global_step, progress)
        final_unet = accelerator.unwrap_model(unet)
        if ema is not None:
            ema.copy_to(final_unet.parameters())
        folder = save_pipeline(final_unet, noise_scheduler, config, class_names, output_dir)
        if config.push_to_hub:
            push_to_hub(folder, config.hub_model_id)
        progress.write(event="finished", step=global_step, pipeline=str(folder))
    accelerator.end_training()
    return folder


def write_samples(accelerator, unet, ema, noise_scheduler, config, class_names, output_dir: Path, step: int,
                  progress: ProgressLog) -> None:
    """A sample grid from the EMA weights (when used), saved as PNG and logged to TensorBoard."""
    model = accelerator.unwrap_model(unet)
    model.eval()
    if ema is not None:
        ema.store(model.parameters())
        ema.copy_to(model.parameters())
    grid = sample_grid(model, noise_scheduler, config, class_names)
    if ema is not None:
        ema.restore(model.parameters())
    model.train()
    samples_dir = output_dir / "samples"
    samples_dir.mkdir(exist_ok=True)
    path = samples_dir / f"step-{step:07d}.png"
    grid.save(path)
    tensorboard = accelerator.get_tracker("tensorboard", unwrap=True)
    tensorboard.add_image("samples", np.asarray(grid.convert("RGB")), step, dataformats="HWC")
    progress.write(event="samples", step=step, path=str(path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="diffusion_app.training.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    try:
        config = config_from_args(parser.parse_args(argv))
        train(config)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
