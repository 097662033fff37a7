"""LoRA training speed of the app's trainer against a plain loop written as diffusers' LoRA example writes it.

    python benchmarks/bench_lora.py [--steps N --batch-size B --size PX --repeats R --threads T]

The plain loop follows examples/text_to_image/train_text_to_image_lora.py: a frozen VAE, text encoder and UNet
in the mixed precision's dtype, PEFT LoRA on the UNet's attention (to_q, to_k, to_v, to_out.0) kept in float32,
and per batch: encode the images with the VAE, sample the latents, noise them at random timesteps, encode the
captions with the text encoder, predict the noise, MSE, backward, clip_grad_norm_(1.0), optimizer and LR steps.
The trainer (mode "lora") runs the same model, data, batch size, rank, precision and steps; it encodes the
images and captions once before the first step, outside the timed windows. Throughput is images/s over
windows of --log-every steps (the first left out), runs alternating.

Exits 1 when the trainer's paired images/s ratio to the plain loop is below 0.95.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import diffusion_app  # noqa: F401  (first: lets diffusers import where torchvision is CPU-incompatible)

import argparse
import json
import statistics
import tempfile
import time

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from diffusers import DDPMScheduler, StableDiffusionPipeline
from diffusers.optimization import get_scheduler
from diffusers.training_utils import cast_training_params
from peft import LoraConfig

from diffusion_app.hardware import default_mixed_precision
from diffusion_app.tiny_sd import build_tiny_sd_pipeline
from diffusion_app.training.config import TrainingConfig
from diffusion_app.training.data import ImageDataset
from diffusion_app.training.sources import read_items
from diffusion_app.training.modes.lora import UNET_TARGETS
from measure import write_random_images
from trainer_windows import steady_throughput, trainer_windows
from report import print_table

RATIO_TARGET = 0.95


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="training steps per run (default: 40)")
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--size", type=int, default=128, help="image side in pixels (default: 128)")
    parser.add_argument("--unet-channels", type=int, nargs=2, default=(128, 256), help="the built model's UNet width")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2, help="runs per loop, interleaved (default: 2)")
    parser.add_argument("--log-every", type=int, default=5, help="steps per timing window (default: 5)")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    return parser.parse_args(argv)


def plain_windows(config: TrainingConfig) -> list[tuple[int, float]]:
    """The diffusers LoRA example's loop; (images, seconds) per window of log_every_steps steps."""
    AcceleratorState._reset_state(reset_partial_state=True)
    accelerator = Accelerator(mixed_precision=config.mixed_precision)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(config.mixed_precision, torch.float32)
    pipeline = StableDiffusionPipeline.from_pretrained(config.pretrained_model)
    noise_scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    unet, vae, text_encoder, tokenizer = pipeline.unet, pipeline.vae, pipeline.text_encoder, pipeline.tokenizer
    for frozen in (unet, vae, text_encoder):
        frozen.requires_grad_(False).to(accelerator.device, dtype)
    unet.add_adapter(LoraConfig(r=config.lora_rank, lora_alpha=config.lora_alpha, init_lora_weights="gaussian",
                                target_modules=UNET_TARGETS))
    cast_training_params(unet, dtype=torch.float32)
    parameters = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate)
    dataset = ImageDataset(read_items(config), config.resolution, 3)
    dataloader = torch.utils.data.DataLoader(dataset, batch_size=config.train_batch_size, shuffle=True)
    lr_scheduler = get_scheduler("cosine", optimizer, num_warmup_steps=config.lr_warmup_steps,
                                 num_training_steps=config.max_train_steps)
    unet, optimizer, dataloader, lr_scheduler = accelerator.prepare(unet, optimizer, dataloader, lr_scheduler)
    windows, step, first, started = [], 0, 0, time.perf_counter()
    while step < config.max_train_steps:
        for batch in dataloader:
            with accelerator.accumulate(unet):
                latents = vae.encode(batch["pixel_values"].to(dtype)).latent_dist.sample() * vae.config.scaling_factor
                noise = torch.randn_like(latents)
                timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (len(latents),))
                noisy = noise_scheduler.add_noise(latents, noise, timesteps)
                ids = tokenizer(batch["captions"], padding="max_length", truncation=True,
                                max_length=tokenizer.model_max_length, return_tensors="pt").input_ids
                encoder_hidden_states = text_encoder(ids, return_dict=False)[0]
                prediction = unet(noisy, timesteps, encoder_hidden_states, return_dict=False)[0]
                loss = F.mse_loss(prediction.float(), noise.float())
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(parameters, 1.0)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            loss.detach().item()
            step += 1
            if step % config.log_every_steps == 0 or step == config.max_train_steps:
                windows.append(((step - first) * config.train_batch_size, time.perf_counter() - started))
                first, started = step, time.perf_counter()
            if step >= config.max_train_steps:
                break
    return windows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-lora-") as work:
        return benchmark(args, Path(work))


def benchmark(args: argparse.Namespace, work: Path) -> int:
    started = time.perf_counter()
    base = build_tiny_sd_pipeline(work / "base", unet_channels=tuple(args.unet_channels))
    data = work / "images"
    write_random_images(data, args.images, size=args.size)
    (data / "metadata.jsonl").write_text("".join(json.dumps({"file_name": path.name, "text": f"picture number {i}"})
                                                 + "\n" for i, path in enumerate(sorted(data.glob("*.png")))))
    config = TrainingConfig(mode="lora", train_data_dir=str(data), pretrained_model=str(base), resolution=args.size,
                            train_batch_size=args.batch_size, max_train_steps=args.steps, lora_rank=args.rank,
                            lora_alpha=args.rank, learning_rate=1e-4, lr_warmup_steps=0, caption_dropout_prob=0.0,
                            use_ema=False, mixed_precision=default_mixed_precision("cpu"), log_every_steps=args.log_every,
                            save_images_steps=0, checkpointing_steps=args.steps + 1)
    unet_params = sum(p.numel() for p in StableDiffusionPipeline.from_pretrained(base).unet.parameters())
    print("LoRA training benchmark: the trainer's lora mode vs the diffusers LoRA example's loop, same process")
    print(f"model    random Stable Diffusion, UNet {unet_params / 1e6:.1f}M params, {args.size}x{args.size} images, "
          f"LoRA rank {args.rank} on to_q/to_k/to_v/to_out.0")
    print(f"run      {config.mixed_precision} mixed precision, {torch.get_num_threads()} torch threads, batch "
          f"{args.batch_size}, {args.steps} steps a run, windows of {args.log_every} (first left out), "
          f"{args.repeats} interleaved repeats")
    cases = {"trainer (lora mode)": lambda i: trainer_windows(TrainingConfig(**{**config.__dict__,
                                                                                "output_dir": str(work / f"run-{i}")})),
             "plain loop": lambda i: plain_windows(config)}
    results: dict[str, list[float]] = {name: [] for name in cases}
    for round_index in range(args.repeats):
        for name in cases if round_index % 2 == 0 else reversed(list(cases)):
            results[name].append(steady_throughput(cases[name](round_index)))
    plain = results["plain loop"]
    rows = [[name, f"{max(values):.2f}", f"{statistics.median(values):.2f}",
             f"{statistics.median(a / b for a, b in zip(values, plain)):.3f}"] for name, values in results.items()]
    print_table(f"steady-state throughput, images/s; target trainer/plain >= {RATIO_TARGET}",
                ["loop", "best", "median", "paired ratio"], rows)
    ratio = float(rows[0][3])
    print(f"\ntrainer/plain: {ratio:.3f} ({'ok' if ratio >= RATIO_TARGET else 'MISSED'}); total "
          f"{time.perf_counter() - started:.0f} s")
    if ratio < RATIO_TARGET:
        print(f"\nFAIL: the trainer runs LoRA at {ratio:.3f} of the plain loop's speed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
