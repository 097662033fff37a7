"""Sampling speed of the app's service against plain diffusers pipelines, in one process.

    python benchmarks/bench_sampling.py [--steps N --seed S --num-images K --repeats R --device cpu]

(a) service.sampling.sample on a warm cache vs DDPMPipeline / DDIMPipeline (eta=0): time and pixels
(b) a cold request (fresh Studio, load included) vs a cached one, with the cache's stats
(c) DDIM with few steps vs DDPM with 1000 steps on the same model, through the service

Exits 1 when the service's images differ from the pipelines' by a single pixel.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import diffusion_app  # noqa: F401  (first: lets diffusers import where torchvision is CPU-incompatible)

import argparse
import statistics
import tempfile
import time

import torch
from diffusers import DDIMPipeline, DDIMScheduler, DDPMPipeline

from diffusion_app.demo_model import build_ddpm_pipeline
from diffusion_app.service.sampling import SamplingRequest, sample
from diffusion_app.service.studio import Studio
from diffusion_app.settings import Settings
from measure import run_interleaved, same_pixels, seconds, timed
from report import print_table

MODEL_NAME = "bench-ddpm-32"
RATIO_TARGET = 1.10


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50, help="steps for (a) and (b) (default: 50)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-images", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per case, interleaved (default: 7)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--ddim-steps", type=int, default=50, help="DDIM steps for (c) (default: 50)")
    parser.add_argument("--ddpm-steps", type=int, default=1000, help="DDPM steps for (c), run once (default: 1000)")
    parser.add_argument("--sample-size", type=int, default=32)
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
    folder = build_ddpm_pipeline(work / "models" / MODEL_NAME, sample_size=args.sample_size, block_out_channels=(32, 64))
    settings = Settings(device=args.device, dtype=torch.float32, models_dir=work / "models",
                        data_dir=work / "data", offline=True)
    K, N, seed = args.num_images, args.steps, args.seed

    def request(scheduler: str, steps: int = N) -> SamplingRequest:
        return SamplingRequest(model=MODEL_NAME, num_images=K, steps=steps, seed=seed, scheduler=scheduler, eta=0.0)

    def generators() -> list[torch.Generator]:
        return [torch.Generator("cpu").manual_seed(seed + i) for i in range(K)]

    ddpm = DDPMPipeline.from_pretrained(folder).to(args.device)
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
    print("Sampling benchmark: diffusion_app service vs plain diffusers, same process")
    print(f"model    UNet2DModel {args.sample_size}x{args.sample_size}, block_out_channels (32, 64), "
          f"{params / 1e6:.2f}M params, random weights")
    print(f"run      device {args.device}, float32, {torch.get_num_threads()} torch threads, "
          f"{K} image(s), seed {seed}, {N} steps, {args.repeats} interleaved repeats")

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
                     "ok" if ratio_paired <= RATIO_TARGET else "MISSED", "identical" if identical else "DIFFERENT"])
    print_table(f"(a) app service (warm cache) vs diffusers pipeline, {N} steps; target app/diffusers <= {RATIO_TARGET:.2f}",
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
    print_table(f"(b) cold request (fresh Studio, load included) vs cached request, DDPM {N} steps",
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
    print_table("(c) DDIM vs DDPM through the app service, same model and seed",
                ["sampler", "steps", "runs", "best", "per step"],
                [["DDPM", args.ddpm_steps, 1, seconds(ddpm_seconds), f"{ddpm_seconds / args.ddpm_steps * 1e3:.1f} ms"],
                 ["DDIM", args.ddim_steps, args.repeats, seconds(ddim_best), f"{ddim_best / args.ddim_steps * 1e3:.1f} ms"]])
    print(f"DDIM speedup: {ddpm_seconds / ddim_best:.1f}x")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")

    if not all_identical:
        print("\nFAIL: the app's images differ from the diffusers pipeline's", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
