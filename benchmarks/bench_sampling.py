"""Sampling speed of the app's service against plain diffusers pipelines, in one process.

    python benchmarks/bench_sampling.py [--steps N --batch-sizes 1 4 8 --repeats R --compile --device cpu]

(a) the app with its defaults (bfloat16 where the CPU computes it natively; with --compile also compiled)
    vs DDIMPipeline in float32, as a notebook runs it, for each batch size: time, ratio, the images' mean
    absolute difference to float32 (0-255 scale), and the share of the machine's bfloat16 matmul peak
    that a UNet step reaches
(b) the app in float32 vs DDPMPipeline / DDIMPipeline (eta=0): the pixels must be identical
(c) a cold request (fresh Studio, load included) vs a cached one, with the cache's stats
(d) DDIM with few steps vs DDPM with 1000 steps on the same model, through the service

The model is the bundled openmoji UNet (--model for another pipeline folder). Exits 1 when (b)'s images
differ by a single pixel; prints MISSED when (a) is slower than half the plain time at batch 4 or 8.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import diffusion_app  # noqa: F401  (first: lets diffusers import where torchvision is CPU-incompatible)

import argparse
import shutil
from dataclasses import replace
import statistics
import tempfile
import time

import numpy as np
import torch
from diffusers import DDIMPipeline, DDIMScheduler, DDPMPipeline
from torch.utils.flop_counter import FlopCounterMode

from diffusion_app.hardware import default_dtype
from diffusion_app.service.generation.sampling import SamplingRequest, sample
from diffusion_app.service.studio import Studio
from diffusion_app.settings import REPO_ROOT, Settings
from measure import run_interleaved, same_pixels, seconds, timed
from report import print_table

MODEL_NAME = "bench-model"
FLOAT32_RATIO_TARGET = 1.10  # (b): the app in float32 costs at most this much more than diffusers
SPEEDUP_TARGET = 0.5  # (a): the app with its defaults takes at most half the plain float32 time at batch 4 and 8


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=REPO_ROOT / "models" / "openmoji",
                        help="an unconditional pipeline folder (default: the bundled openmoji)")
    parser.add_argument("--steps", type=int, default=50, help="steps for (a), (b) and (c) (default: 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 8], help="for (a) (default: 1 4 8)")
    parser.add_argument("--num-images", type=int, default=2, help="batch of (b), (c) and (d) (default: 2)")
    parser.add_argument("--compile", action="store_true", help="also time the app with DS_COMPILE=1 in (a)")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per case, interleaved (default: 7)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ddim-steps", type=int, default=50, help="DDIM steps for (c) (default: 50)")
    parser.add_argument("--ddpm-steps", type=int, default=1000, help="DDPM steps for (c), run once (default: 1000)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-sampling-") as work:
        return benchmark(args, Path(work))


def benchmark(args: argparse.Namespace, work: Path) -> int:
    started = time.perf_counter()
    folder = work / "models" / MODEL_NAME
    shutil.copytree(args.model, folder)
    settings = Settings(device=args.device, dtype=torch.float32, models_dir=work / "models",
                        data_dir=work / "data", offline=True)
    K, N, seed = args.num_images, args.steps, args.seed

    def request(scheduler: str, steps: int = N) -> SamplingRequest:
        return SamplingRequest(model=MODEL_NAME, num_images=K, steps=steps, seed=seed, scheduler=scheduler, eta=0.0)

    def generators() -> list[torch.Generator]:
        return [torch.Generator("cpu").manual_seed(seed + i) for i in range(K)]

    ddpm = DDPMPipeline.from_pretrained(folder, dtype=torch.float32).to(args.device)
    ddim = DDIMPipeline(unet=ddpm.unet, scheduler=DDIMScheduler.from_config(ddpm.scheduler.config))
    for pipe in (ddpm, ddim):
        pipe.set_progress_bar_config(disable=True)
    studio = Studio(settings)

    cases = {
        ("DDPM", "app"): lambda: sample(studio, request("DDPM"))[0],
        ("DDPM", "diffusers"): lambda: ddpm(batch_size=K, generator=generators(), num_inference_steps=N,
                                            output_type="pil").images,
        ("DDIM", "app"): lambda: sample(studio, request("DDIM"))[0],
        ("DDIM", "diffusers"): lambda: ddim(batch_size=K, generator=generators(), num_inference_steps=N, eta=0.0,
                                            output_type="pil").images,
    }
    params = sum(p.numel() for p in ddpm.unet.parameters())
    config = ddpm.unet.config
    print("Sampling benchmark: diffusion_app service vs plain diffusers, same process")
    print(f"model    {args.model.name}: UNet2DModel {config.sample_size}x{config.sample_size}, block_out_channels "
          f"{tuple(config.block_out_channels)}, {params / 1e6:.2f}M params")
    print(f"run      device {args.device}, {torch.get_num_threads()} torch threads, seed {seed}, {N} steps, "
          f"{args.repeats} interleaved repeats")

    app_defaults_vs_plain(args, settings, ddim, seed, N)

    for case in cases.values():
        case()
    times, rounds = run_interleaved(cases, args.repeats)

    rows, all_identical = [], True
    for scheduler in ("DDPM", "DDIM"):
        app, base = times[(scheduler, "app")], times[(scheduler, "diffusers")]
        identical = all(same_pixels(r[(scheduler, "app")], r[(scheduler, "diffusers")]) for r in rounds)
        all_identical &= identical
        ratio_best = min(app) / min(base)
        ratio_paired = statistics.median(a / b for a, b in zip(app, base))
        rows.append([scheduler, seconds(min(app)), seconds(statistics.median(app)), seconds(min(base)),
                     seconds(statistics.median(base)), f"{ratio_best:.3f}", f"{ratio_paired:.3f}",
                     "ok" if ratio_paired <= FLOAT32_RATIO_TARGET else "MISSED", "identical" if identical else "DIFFERENT"])
    print_table(f"(b) app service in float32 (warm cache) vs diffusers pipeline, {K} image(s), {N} steps; "
                f"target app/diffusers <= {FLOAT32_RATIO_TARGET:.2f}",
                ["scheduler", "app best", "app median", "diffusers best", "diffusers median",
                 "ratio of bests", "paired ratio", "target", "pixels"], rows)
    print("paired ratio: median over repeats of app/diffusers for the two runs made back to back; the target uses it")

    cold, cached, stats = [], [], {}
    for _ in range(args.repeats):
        fresh = Studio(settings)
        cold.append(timed(lambda: sample(fresh, request("DDPM")))[0])
        cached.append(timed(lambda: sample(fresh, request("DDPM")))[0])
        stats = fresh.cache.stats()
    load_seconds = stats["models"][MODEL_NAME]["load_seconds"]
    print_table(f"(c) cold request (fresh Studio, load included) vs cached request, DDPM {N} steps",
                ["request", "best", "median"],
                [["cold", seconds(min(cold)), seconds(statistics.median(cold))],
                 ["cached", seconds(min(cached)), seconds(statistics.median(cached))],
                 ["cold/cached", f"{min(cold) / min(cached):.3f}", f"{statistics.median(cold) / statistics.median(cached):.3f}"]])
    print(f"cache stats (last fresh Studio): hits {stats['hits']}, misses {stats['misses']}, "
          f"evictions {stats['evictions']}, {stats['total_bytes'] / 2**20:.2f} MiB loaded, "
          f"load {load_seconds:.3f} s")

    run_ddim = lambda: timed(lambda: sample(studio, request("DDIM", args.ddim_steps))[0])[0]
    ddim_times = [run_ddim() for _ in range(args.repeats // 2)]
    ddpm_seconds, _ = timed(lambda: sample(studio, request("DDPM", args.ddpm_steps))[0])
    ddim_times += [run_ddim() for _ in range(args.repeats - args.repeats // 2)]
    ddim_best = min(ddim_times)
    print_table("(d) DDIM vs DDPM through the app service, same model and seed",
                ["sampler", "steps", "runs", "best", "per step"],
                [["DDPM", args.ddpm_steps, 1, seconds(ddpm_seconds), f"{ddpm_seconds / args.ddpm_steps * 1e3:.1f} ms"],
                 ["DDIM", args.ddim_steps, args.repeats, seconds(ddim_best), f"{ddim_best / args.ddim_steps * 1e3:.1f} ms"]])
    print(f"DDIM speedup: {ddpm_seconds / ddim_best:.1f}x")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")

    if not all_identical:
        print("\nFAIL: the app's images differ from the diffusers pipeline's", file=sys.stderr)
        return 1
    return 0


def app_defaults_vs_plain(args, settings: Settings, ddim: DDIMPipeline, seed: int, steps: int) -> None:
    """(a): the app as it runs by default (and compiled, with --compile) vs DDIMPipeline in float32."""
    dtype = default_dtype(args.device)
    variants = {f"app ({str(dtype).removeprefix('torch.')})": Studio(replace(settings, dtype=dtype))}
    if args.compile:
        variants[f"app ({str(dtype).removeprefix('torch.')}, compiled)"] = Studio(replace(settings, dtype=dtype,
                                                                                          compile=True))
    for studio in variants.values():
        started = time.perf_counter()
        studio.pipeline(MODEL_NAME, "unconditional")  # load (and compile) outside the timings
        print(f"loaded {studio.settings.dtype}{' (compiled)' if studio.settings.compile else ''} in "
              f"{time.perf_counter() - started:.1f} s")
    peak = bf16_matmul_flops_per_second()
    rows = []
    for batch in args.batch_sizes:
        request = SamplingRequest(model=MODEL_NAME, num_images=batch, steps=steps, seed=seed, scheduler="DDIM", eta=0.0)
        cases = {name: (lambda studio=studio: sample(studio, request)[0]) for name, studio in variants.items()}
        cases["diffusers float32"] = lambda: ddim(
            batch_size=batch, generator=[torch.Generator("cpu").manual_seed(seed + i) for i in range(batch)],
            num_inference_steps=steps, eta=0.0, output_type="pil").images
        for case in cases.values():
            case()
        times, rounds = run_interleaved(cases, args.repeats)
        step_flops = unet_step_flops(ddim.unet, batch)
        base = times["diffusers float32"]
        for name in variants:
            paired = statistics.median(a / b for a, b in zip(times[name], base))
            difference = np.mean([np.abs(np.asarray(a, float) - np.asarray(b, float)).mean()
                                  for r in rounds for a, b in zip(r[name], r["diffusers float32"])])
            share = step_flops / (statistics.median(times[name]) / steps) / peak
            target = "ok" if paired <= SPEEDUP_TARGET else "MISSED" if batch in (4, 8) else ""
            rows.append([batch, name, seconds(statistics.median(times[name])), seconds(statistics.median(base)),
                         f"{paired:.3f}", target, f"{difference:.2f}", f"{share:.1%}"])
    print_table(f"(a) the app's defaults vs DDIMPipeline in float32, {steps} DDIM steps; target app/plain <= "
                f"{SPEEDUP_TARGET} at batch 4 and 8",
                ["batch", "app", "app median", "plain median", "paired ratio", "target", "pixel MAD", "bf16 peak"],
                rows)
    print(f"pixel MAD: mean |app - float32| over the images' pixels (0-255); bf16 peak: a UNet step's FLOPs "
          f"over its time, as a share of this machine's bfloat16 2048x2048 matmul rate ({peak / 1e12:.2f} TFLOP/s)")


def unet_step_flops(unet, batch: int) -> int:
    """Floating-point operations of one UNet forward at this batch size (convolutions, matmuls, attention)."""
    config = unet.config
    sample = torch.zeros(batch, config.in_channels, config.sample_size, config.sample_size, device=unet.device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        unet(sample, torch.tensor(999))
    return counter.get_total_flops()


def bf16_matmul_flops_per_second(size: int = 2048, repeats: int = 10) -> float:
    a, b = (torch.randn(size, size, dtype=torch.bfloat16) for _ in range(2))
    for _ in range(3):
        a @ b
    elapsed, _ = timed(lambda: [a @ b for _ in range(repeats)])
    return 2 * size**3 * repeats / elapsed


if __name__ == "__main__":
    sys.exit(main())
