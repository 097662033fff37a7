"""Training throughput of the app's trainer against a plain diffusers training loop, in one process.

    python benchmarks/bench_training.py [--steps N --batch-size B --repeats R --log-every K --ema --device cpu]

The plain loop is the one from the diffusers "basic training" tutorial: Accelerator, AdamW,
get_cosine_schedule_with_warmup and, per batch, randn_like noise, random timesteps, add_noise,
the UNet's noise prediction, MSE loss, backward, clip_grad_norm_(1.0), optimizer and LR steps.
Both train the same UNet (training.train.build_unet) on the same ImageDataset (random 32x32 RGB
PNGs) with the same batch size and number of steps. Throughput is images/s over windows of
--log-every steps, read from the trainer's progress.jsonl and timed the same way for the plain
loop; the first window is warm-up and left out. Runs alternate trainer and plain loop; --ema adds
trainer runs with EMA weights (which the tutorial's loop does not keep).

Exits 1 when the paired ratio trainer (no EMA, as the tutorial) / plain loop is below 0.95.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import diffusion_app  # noqa: F401  (first: lets diffusers import where torchvision is CPU-incompatible)

import argparse
import json
import os
import statistics
import tempfile
import time
from dataclasses import replace

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from diffusers import DDPMScheduler
from diffusers.optimization import get_cosine_schedule_with_warmup

from diffusion_app.training.config import TrainingConfig
from diffusion_app.training.data import ImageDataset
from diffusion_app.training.train import build_unet, train
from measure import write_random_images
from report import print_table

RATIO_TARGET = 0.95


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="training steps per run (default: 40)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="runs per side, interleaved (default: 2)")
    parser.add_argument("--log-every", type=int, default=10, help="steps per timing window (default: 10)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--images", type=int, default=512, help="random images in the dataset (default: 512)")
    parser.add_argument("--ema", action="store_true", help="also time the trainer with EMA weights")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    return parser.parse_args(argv)


def trainer_windows(config: TrainingConfig) -> list[tuple[int, float]]:
    """Run the trainer; (images, seconds) per logged window, from progress.jsonl."""
    train(config)
    records = [json.loads(line) for line in (Path(config.output_dir) / "progress.jsonl").read_text().splitlines()]
    windows, previous_step = [], 0
    for record in records:
        if "images_per_s" in record:
            images = (record["step"] - previous_step) * config.train_batch_size
            windows.append((images, images / record["images_per_s"]))
            previous_step = record["step"]
    return windows


def plain_windows(config: TrainingConfig, dataset: ImageDataset) -> list[tuple[int, float]]:
    """The diffusers tutorial's training loop; (images, seconds) per window of log_every_steps steps."""
    accelerator = Accelerator()
    model = build_unet(config, None)
    noise_scheduler = DDPMScheduler(num_train_timesteps=config.num_train_timesteps)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    dataloader = torch.utils.data.DataLoader(dataset, batch_size=config.train_batch_size, shuffle=True)
    lr_scheduler = get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=config.lr_warmup_steps,
                                                   num_training_steps=config.max_train_steps)
    model, optimizer, dataloader, lr_scheduler = accelerator.prepare(model, optimizer, dataloader, lr_scheduler)

    windows, step, window_first_step, window_start = [], 0, 0, time.perf_counter()
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
            loss.detach().item()
            step += 1
            if step % config.log_every_steps == 0 or step == config.max_train_steps:
                windows.append(((step - window_first_step) * config.train_batch_size, time.perf_counter() - window_start))
                window_first_step, window_start = step, time.perf_counter()
            if step >= config.max_train_steps:
                break
    return windows


def steady_throughput(windows: list[tuple[int, float]]) -> float:
    """Images/s over every window but the first."""
    steady = windows[1:] or windows
    return sum(images for images, _ in steady) / sum(seconds for _, seconds in steady)


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
    base = TrainingConfig(train_data_dir=str(data_dir), block_out_channels=[32, 64], train_batch_size=args.batch_size,
                          max_train_steps=args.steps, log_every_steps=args.log_every, use_ema=False,
                          save_images_steps=0, checkpointing_steps=args.steps + 1, num_sample_images=1,
                          sample_inference_steps=1)
    dataset = ImageDataset(data_dir, base.resolution, base.channels)
    params = sum(p.numel() for p in build_unet(base, None).parameters())

    cases = {"trainer": lambda i: trainer_windows(replace(base, output_dir=str(work / f"trainer-{i}"))),
             "plain loop": lambda i: plain_windows(base, dataset)}
    if args.ema:
        cases["trainer + EMA"] = lambda i: trainer_windows(replace(base, output_dir=str(work / f"ema-{i}"), use_ema=True))

    print("Training benchmark: diffusion_app trainer vs the diffusers tutorial's loop, same process")
    print(f"model    UNet2DModel 32x32 RGB, block_out_channels {tuple(base.block_out_channels)}, attention, "
          f"{params / 1e6:.2f}M params")
    print(f"data     {len(dataset)} random 32x32 RGB PNGs (ImageDataset), batch {args.batch_size}")
    print(f"run      device {args.device}, float32, {torch.get_num_threads()} torch threads, {args.steps} steps a run, "
          f"windows of {args.log_every} steps (first left out), {args.repeats} interleaved repeats")

    results: dict[str, list[float]] = {name: [] for name in cases}
    names = list(cases)
    for round_index in range(args.repeats):
        for name in names if round_index % 2 == 0 else reversed(names):
            results[name].append(steady_throughput(cases[name](round_index)))

    plain = results["plain loop"]
    rows = []
    for name, values in results.items():
        paired = statistics.median(a / b for a, b in zip(values, plain))
        rows.append([name, f"{max(values):.1f}", f"{statistics.median(values):.1f}",
                     f"{max(values) / max(plain):.3f}", f"{paired:.3f}", "  ".join(f"{v:.1f}" for v in values)])
    print_table(f"steady-state throughput, images/s (higher is better); target trainer/plain >= {RATIO_TARGET:.2f}",
                ["loop", "best", "median", "ratio of bests", "paired ratio", "runs"], rows)
    print("paired ratio: median over repeats of trainer/plain for the runs of one round; the target uses it")
    ratio = statistics.median(a / b for a, b in zip(results["trainer"], plain))
    print(f"\ntrainer/plain: {ratio:.3f}  {'ok' if ratio >= RATIO_TARGET else 'MISSED'}")
    print(f"total {time.perf_counter() - started:.0f} s")
    if ratio < RATIO_TARGET:
        print(f"\nFAIL: trainer throughput is {ratio:.3f} of the plain loop's, below {RATIO_TARGET:.2f}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
