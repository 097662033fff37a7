"""Training speed of the trainer's default preset against the diffusers tutorial's float32 loop, in one process.

    python benchmarks/bench_training.py [--steps N --repeats R --log-every K --device cpu --threads T]

The plain loop is the one from the diffusers "basic training" tutorial: Accelerator, AdamW,
get_cosine_schedule_with_warmup and, per batch, randn_like noise, random timesteps, add_noise,
the UNet's noise prediction, MSE loss, backward, clip_grad_norm_(1.0), optimizer and LR steps, in
float32. The trainer runs the Training tab's Standard preset for this device (the small UNet, batch
16, EMA, and bf16 mixed precision where the CPU computes bfloat16 natively), and the same preset in
float32. All three train the same UNet on the same ImageDataset (random 32x32 RGB PNGs) with the same
batch size and steps. Throughput is images/s over windows of --log-every steps, read from the
trainer's progress.jsonl and timed the same way for the plain loop; the first window is warm-up and
left out. Runs alternate.

Exits 1 when the preset's paired images/s ratio to the plain loop is below 1.8, or when its final
loss (mean of the second half of the run) is more than 5% from the plain loop's.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import diffusion_app  # noqa: F401  (first: lets diffusers import where torchvision is CPU-incompatible)

import argparse
import os
import statistics
import tempfile
import time
from dataclasses import replace

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from diffusers import DDPMScheduler
from diffusers.optimization import get_cosine_schedule_with_warmup

from diffusion_app.hardware import default_mixed_precision
from diffusion_app.service.jobs.options import presets, training_config
from diffusion_app.training.config import TrainingConfig
from diffusion_app.training.data import ImageDataset
from diffusion_app.training.modes.ddpm import build_unet
from measure import write_random_images
from trainer_windows import steady_throughput, trainer_windows
from report import print_table

RATIO_TARGET = 1.8
LOSS_TOLERANCE = 0.05


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200, help="training steps per run (default: 200)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per loop, interleaved (default: 2)")
    parser.add_argument("--log-every", type=int, default=10, help="steps per timing window (default: 10)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--images", type=int, default=512, help="random images in the dataset (default: 512)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    return parser.parse_args(argv)


def plain_windows(config: TrainingConfig, dataset: ImageDataset) -> list[tuple[int, float, float]]:
    """The diffusers tutorial's training loop in float32; (images, seconds, mean loss) per window of
    log_every_steps steps."""
    AcceleratorState._reset_state(reset_partial_state=True)
    accelerator = Accelerator()
    model = build_unet(config, None)
    noise_scheduler = DDPMScheduler(num_train_timesteps=config.num_train_timesteps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    dataloader = torch.utils.data.DataLoader(dataset, batch_size=config.train_batch_size, shuffle=True)
    lr_scheduler = get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=config.lr_warmup_steps,
                                                   num_training_steps=config.max_train_steps)
    model, optimizer, dataloader, lr_scheduler = accelerator.prepare(model, optimizer, dataloader, lr_scheduler)

    windows, losses, step, window_first_step, window_start = [], [], 0, 0, time.perf_counter()
    while step < config.max_train_steps:
        for batch in dataloader:
            clean = batch["pixel_values"]
            noise = torch.randn_like(clean)
            timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (clean.shape[0],),
                                      device=clean.device)
            noisy = noise_scheduler.add_noise(clean, noise, timesteps)
            with accelerator.accumulate(model):
                noise_pred = model(noisy, timesteps).sample
                loss = F.mse_loss(noise_pred, noise)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            losses.append(loss.detach().item())
            step += 1
            if step % config.log_every_steps == 0 or step == config.max_train_steps:
                windows.append(((step - window_first_step) * config.train_batch_size, time.perf_counter() - window_start,
                                sum(losses) / len(losses)))
                losses, window_first_step, window_start = [], step, time.perf_counter()
            if step >= config.max_train_steps:
                break
    return windows


def final_loss(windows: list[tuple[int, float, float]]) -> float:
    """Mean loss over the second half of the run's windows."""
    second_half = windows[len(windows) // 2:]
    return sum(loss for _, _, loss in second_half) / len(second_half)


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    if args.device == "cpu":
        os.environ["ACCELERATE_USE_CPU"] = "true"
    elif args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA device is available", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-training-") as work:
        return benchmark(args, Path(work), started)


def benchmark(args: argparse.Namespace, work: Path, started: float) -> int:
    data_dir = work / "images"
    write_random_images(data_dir, args.images)
    dataset_size = len(list(data_dir.iterdir()))
    preset = replace(presets(args.device)["Standard"], name="bench", steps=args.steps, sample_every=0,
                     checkpoint_every=args.steps)
    config = replace(training_config(preset, dataset_size, args.steps), train_data_dir=str(data_dir),
                     log_every_steps=args.log_every, save_images_steps=0, checkpointing_steps=args.steps + 1,
                     resume_from_checkpoint=None)
    dataset = ImageDataset(data_dir, config.resolution, config.channels)
    params = sum(p.numel() for p in build_unet(config, None).parameters())
    preset_name = f"trainer, preset ({config.mixed_precision})"
    cases = {
        preset_name: lambda i: trainer_windows(replace(config, output_dir=str(work / f"preset-{i}"))),
        "trainer, float32": lambda i: trainer_windows(replace(config, output_dir=str(work / f"fp32-{i}"),
                                                              mixed_precision="no")),
        "plain loop, float32": lambda i: plain_windows(config, dataset),
    }

    print("Training benchmark: the trainer's Standard preset vs the diffusers tutorial's float32 loop, same process")
    print(f"model    UNet2DModel 32x32 RGB, block_out_channels {tuple(config.block_out_channels)}, attention, "
          f"{params / 1e6:.2f}M params")
    print(f"data     {len(dataset)} random 32x32 RGB PNGs (ImageDataset), batch {config.train_batch_size}")
    print(f"run      device {args.device}, preset mixed precision {config.mixed_precision} "
          f"(default here: {default_mixed_precision(args.device)}), EMA {config.use_ema}, "
          f"{torch.get_num_threads()} torch threads, {args.steps} steps a run, windows of {args.log_every} steps "
          f"(first left out), {args.repeats} interleaved repeats")

    results: dict[str, list[list]] = {name: [] for name in cases}
    names = list(cases)
    for round_index in range(args.repeats):
        for name in names if round_index % 2 == 0 else reversed(names):
            results[name].append(cases[name](round_index))

    plain = [steady_throughput(windows) for windows in results["plain loop, float32"]]
    rows = []
    for name, runs in results.items():
        speeds = [steady_throughput(windows) for windows in runs]
        paired = statistics.median(a / b for a, b in zip(speeds, plain))
        rows.append([name, f"{max(speeds):.1f}", f"{statistics.median(speeds):.1f}", f"{paired:.3f}",
                     f"{statistics.mean(final_loss(windows) for windows in runs):.4f}"])
    print_table(f"steady-state throughput, images/s (higher is better); target preset/plain >= {RATIO_TARGET:.1f}",
                ["loop", "best", "median", "paired ratio", "final loss"], rows)
    print("paired ratio: median over repeats of this loop / plain loop in the same round; the target uses it")

    preset_losses = [loss for _, _, loss in results[preset_name][0]]
    float32_losses = [loss for _, _, loss in results["trainer, float32"][0]]
    gaps = [abs(a - b) / b for a, b in zip(preset_losses, float32_losses)]
    print(f"\nloss curves, preset vs trainer float32 (same seed, data order and noise), per window of "
          f"{args.log_every} steps: median gap {statistics.median(gaps):.2%}, largest {max(gaps):.2%}")

    ratio = rows[0][3]
    preset_loss = statistics.mean(final_loss(windows) for windows in results[preset_name])
    plain_loss = statistics.mean(final_loss(windows) for windows in results["plain loop, float32"])
    loss_gap = abs(preset_loss - plain_loss) / plain_loss
    print(f"preset/plain: {ratio} images/s ({'ok' if float(ratio) >= RATIO_TARGET else 'MISSED'}); final loss "
          f"{preset_loss:.4f} vs {plain_loss:.4f}, {loss_gap:.1%} apart ({'ok' if loss_gap <= LOSS_TOLERANCE else 'MISSED'})")
    print(f"total {time.perf_counter() - started:.0f} s")
    if float(ratio) < RATIO_TARGET or loss_gap > LOSS_TOLERANCE:
        print("\nFAIL: the preset misses its speed or loss target", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
