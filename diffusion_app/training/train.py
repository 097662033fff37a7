"""The trainer: one loop for every mode (training/modes/), as the diffusers training examples write it.

    accelerate launch -m diffusion_app.training.train --config job.json   (any number of processes)
    python -m diffusion_app train --config job.json                        (one process)

accelerate handles devices, mixed precision and gradient accumulation; the loop adds EMA weights,
warmup + cosine learning rate, checkpoints that resume exactly, TensorBoard logs and sample grids.
Progress goes to <output_dir>/progress.jsonl, one JSON object a line, for the app's jobs panel.
SIGTERM saves a checkpoint and exits cleanly.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, ProjectConfiguration, set_seed
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from torch.nn.attention import SDPBackend, sdpa_kernel

from .checkpoints import ProgressLog, StopRequest, checkpoint_step, latest_checkpoint, save_checkpoint
from .config import TrainingConfig, add_arguments, config_from_args
from .modes import build_mode


def attention_kernels(accelerator: Accelerator) -> contextlib.AbstractContextManager:
    """Which scaled-dot-product attention kernel trains. On the CPU in bfloat16, the plain matmul-and-softmax
    one (SDPA's math backend): PyTorch's CPU flash-attention backward in bfloat16 took 57 ms a call on the
    openmoji UNet's 64-token attention at batch 64, a third of the whole step, and left bf16 training slower
    than float32. Elsewhere PyTorch chooses."""
    if accelerator.device.type == "cpu" and accelerator.mixed_precision == "bf16":
        return sdpa_kernel(SDPBackend.MATH)
    return contextlib.nullcontext()


def push_to_hub(folder: Path, repo_id: str) -> None:
    from huggingface_hub import create_repo, upload_folder

    token = os.environ.get("HF_TOKEN")
    create_repo(repo_id, token=token, exist_ok=True)
    upload_folder(repo_id=repo_id, folder_path=folder, token=token, commit_message="Upload trained model")


def train(config: TrainingConfig) -> Path | None:
    """Run (or resume) training; returns the saved model folder, or None when stopped early."""
    config.validate()
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

    mode = build_mode(config, accelerator)
    parameters = mode.trainable_parameters()
    ema = EMAModel(parameters, decay=config.ema_max_decay, use_ema_warmup=True, inv_gamma=config.ema_inv_gamma,
                   power=config.ema_power) if config.use_ema else None
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, betas=(config.adam_beta1, config.adam_beta2),
                                  weight_decay=config.adam_weight_decay, eps=config.adam_epsilon)
    # Its own generator: creating a loader iterator must not draw from the global RNG that
    # checkpoints restore, or a resumed run would see different noise than an uninterrupted one.
    dataloader = torch.utils.data.DataLoader(mode.dataset, batch_size=config.train_batch_size, shuffle=True,
                                             num_workers=config.dataloader_num_workers,
                                             generator=torch.Generator().manual_seed(config.seed))
    steps_per_epoch = math.ceil(len(dataloader) / config.gradient_accumulation_steps)
    max_steps = config.max_train_steps or config.num_epochs * steps_per_epoch
    num_epochs = math.ceil(max_steps / steps_per_epoch)
    lr_scheduler = get_scheduler(config.lr_scheduler, optimizer,
                                 num_warmup_steps=config.lr_warmup_steps * accelerator.num_processes,
                                 num_training_steps=max_steps * accelerator.num_processes)
    model, optimizer, dataloader, lr_scheduler = accelerator.prepare(mode.model, optimizer, dataloader, lr_scheduler)
    if hasattr(mode, "register_checkpoint_hooks"):
        mode.register_checkpoint_hooks(accelerator, model)
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
    progress.write(event="started", step=global_step, total_steps=max_steps, epochs=num_epochs, mode=config.mode,
                   **mode.describe())

    losses, window_start = [], time.perf_counter()
    for epoch in range(first_epoch, num_epochs):
        if global_step >= max_steps:
            break
        dataloader.set_epoch(epoch)
        if hasattr(mode.dataset, "set_epoch"):  # accelerate passes it on only for some samplers
            mode.dataset.set_epoch(epoch)
        batches = dataloader
        if epoch == first_epoch and batches_to_skip:
            batches = accelerator.skip_first_batches(dataloader, batches_to_skip)
        model.train()
        for batch in batches:
            with accelerator.accumulate(model), accelerator.autocast(), attention_kernels(accelerator):
                loss = mode.loss(model, batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(parameters, 1.0)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            losses.append(loss.detach().item())
            if not accelerator.sync_gradients:
                continue
            if ema is not None:
                ema.step(parameters)
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
                path = save_checkpoint(accelerator, output_dir, global_step, config.checkpoints_total_limit)
                progress.write(event="checkpoint", step=global_step, path=str(path))
            if (accelerator.is_main_process and config.save_images_steps and global_step < max_steps
                    and global_step % config.save_images_steps == 0):
                write_samples(accelerator, mode, model, ema, output_dir, global_step, progress)
            if stop.requested:
                progress.write(event="stopped", step=global_step)
                accelerator.end_training()
                return None
            if global_step >= max_steps:
                break

    accelerator.wait_for_everyone()
    folder = None
    if accelerator.is_main_process:
        write_samples(accelerator, mode, model, ema, output_dir, global_step, progress)
        final = accelerator.unwrap_model(model)
        if ema is not None:
            ema.copy_to(parameters)
        folder = mode.save(final, output_dir)
        if config.push_to_hub:
            push_to_hub(folder, config.hub_model_id)
        progress.write(event="finished", step=global_step, pipeline=str(folder))
    accelerator.end_training()
    return folder


def write_samples(accelerator, mode, model, ema, output_dir: Path, step: int, progress: ProgressLog) -> None:
    """The mode's sample grid from the EMA weights (when used), saved as PNG and logged to TensorBoard."""
    unwrapped = accelerator.unwrap_model(model)
    parameters = mode.trainable_parameters()
    unwrapped.eval()
    if ema is not None:
        ema.store(parameters)
        ema.copy_to(parameters)
    with torch.no_grad(), accelerator.autocast():
        grid = mode.sample_grid(unwrapped)
    if ema is not None:
        ema.restore(parameters)
    unwrapped.train()
    if grid is None:
        return
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
