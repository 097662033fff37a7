"""Text to image: the app's call against a plain diffusers `pipe(...)`, and memory across model switches.

    python benchmarks/bench_text2img.py [--steps N --size PX --scheduler NAME --repeats R --threads T]
    python benchmarks/bench_text2img.py --sd15 --device cuda --size 512 [--compile]   # SD 1.5's architecture
    python benchmarks/bench_text2img.py --model stable-diffusion-v1-5/stable-diffusion-v1-5 \\
        --second-model SOURCE --device cuda --dtype float16 --size 512        # the real weights, on a GPU

(a) TextToImageRun (worker thread, step callback, previews every k steps, per-request scheduler on a
    pipeline copy) vs `pipe(...)` on the same cached pipeline, scheduler, steps and seeds: time and pixels
(b) one cache slot, two models, switched 5 times: memory after the 5th switch vs after the 1st
(c) the app with this device's defaults (float16 and channels-last on CUDA, bfloat16 on CPUs that compute
    it natively; --compile adds compilation) vs a plain diffusers pipeline in float32 on the CPU or float16
    on CUDA, as a notebook loads it: it/s, the images' mean absolute difference to a float32 run, and
    whether the VAE decode in the app's dtype stays finite

Without --model, both models are random-weight Stable Diffusion pipelines built here (tiny VAE and
text encoder, a UNet of --unet-channels); --sd15 builds them with Stable Diffusion 1.5's architecture
instead (860M-parameter UNet, 123M text encoder, 84M VAE). Exits 1 when (a)'s images differ by a
single pixel, a switch leaves a model alive, or (c)'s decode is not finite.
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
import weakref
from dataclasses import replace

import numpy as np
import torch
from diffusers import StableDiffusionPipeline

from diffusion_app.catalog import TEXT_TO_IMAGE, Catalog, ModelEntry, entry_from_spec
from diffusion_app.service.models.cache import module_bytes
from diffusion_app.core.schedulers import TEXT_TO_IMAGE_SCHEDULERS
from diffusion_app.service.studio import Studio
from diffusion_app.service.generation.text2img import TextToImageRequest, TextToImageRun
from diffusion_app.hardware import default_dtype
from diffusion_app.settings import Settings, parse_dtype
from diffusion_app.tiny_sd import build_sd15_architecture_pipeline, build_tiny_sd_pipeline
from measure import same_pixels, seconds, synchronize, timed
from report import print_table

RATIO_TARGET = 1.05
PROMPT = "a lighthouse on a cliff at dawn, oil painting"
NEGATIVE_PROMPT = "blurry, low quality"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="hub id or local folder (default: a random-weight model built here)")
    parser.add_argument("--second-model", help="the model (b) switches to (default: another random-weight one)")
    parser.add_argument("--unet-channels", type=int, nargs=2, default=(128, 256), help="built models' UNet width")
    parser.add_argument("--sd15", action="store_true", help="build the models with Stable Diffusion 1.5's architecture")
    parser.add_argument("--compile", action="store_true", help="(c) also times the app with DS_COMPILE=1")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=256, help="width and height in pixels (default: 256)")
    parser.add_argument("--num-images", type=int, default=1)
    parser.add_argument("--scheduler", choices=list(TEXT_TO_IMAGE_SCHEDULERS), default="DPM++ 2M")
    parser.add_argument("--preview-every", type=int, default=5, help="the app's previews, as in the tab")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per case, interleaved (default: 5)")
    parser.add_argument("--switches", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", help="float32, float16 or bfloat16")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    return parser.parse_args(argv)


def mib(value: float) -> str:
    return f"{value / 2**20:.1f} MiB"


def resident_bytes() -> int:
    """The process's resident memory (Linux): what the OS sees, including memory the allocator kept."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-text2img-") as work:
        return benchmark(args, Path(work))


def model_entries(args: argparse.Namespace, work: Path) -> list[ModelEntry]:
    sources = [args.model, args.second_model]
    entries = []
    for index, source in enumerate(sources):
        if source is None and args.sd15:
            source = str(build_sd15_architecture_pipeline(work / f"random-sd15-{index}", seed=index))
        elif source is None:
            source = str(build_tiny_sd_pipeline(work / f"random-sd-{index}", seed=index,
                                                unet_channels=tuple(args.unet_channels)))
        entries.append(entry_from_spec(f"model-{'ab'[index]}", source, hub_kind=TEXT_TO_IMAGE))
    return entries


def benchmark(args: argparse.Namespace, work: Path) -> int:
    started = time.perf_counter()
    entries = model_entries(args, work)
    settings = Settings(device=args.device, dtype=parse_dtype(args.dtype), data_dir=work / "data", offline=False,
                        cache_max_models=1)
    studio = Studio(settings, Catalog(entries))
    model = entries[0].name
    pipe = studio.pipeline(model, TEXT_TO_IMAGE)
    pipe.scheduler = TEXT_TO_IMAGE_SCHEDULERS[args.scheduler].from_config(pipe.scheduler.config)
    K, N = args.num_images, args.steps
    request = TextToImageRequest(model=model, prompt=PROMPT, negative_prompt=NEGATIVE_PROMPT, steps=N,
                                 width=args.size, height=args.size, num_images=K, seed=args.seed,
                                 scheduler=args.scheduler)

    def app() -> list:
        run = TextToImageRun(studio, request, preview_every=args.preview_every)
        for _ in run:
            pass
        return run.images

    def plain() -> list:
        generators = [torch.Generator("cpu").manual_seed(args.seed + i) for i in range(K)]
        return pipe(PROMPT, negative_prompt=NEGATIVE_PROMPT, num_inference_steps=N, width=args.size,
                    height=args.size, num_images_per_prompt=K, generator=generators).images

    print("Text-to-image benchmark: diffusion_app's call vs plain diffusers pipe(...), same process")
    unet_params = sum(p.numel() for p in pipe.unet.parameters())
    print(f"model    {entries[0].source} ({type(pipe).__name__}, UNet {unet_params / 1e6:.1f}M params, "
          f"{mib(module_bytes(pipe))} loaded)")
    print(f"run      device {args.device}, {args.dtype}, {torch.get_num_threads()} torch threads, {K} image(s) "
          f"{args.size}x{args.size}, {args.scheduler}, {N} steps, seed {args.seed}, app previews every "
          f"{args.preview_every} steps, {args.repeats} interleaved repeats")
    if not torch.cuda.is_available():
        print("note     no CUDA device here: this is a CPU run in float32 on a small random-weight model; "
              "the fp16 512x512 GPU run is the second command in this script's docstring.")

    app(), plain()  # warm up
    times = {"app": [], "diffusers": []}
    identical = True
    for round_index in range(args.repeats):
        order = ("app", "diffusers") if round_index % 2 == 0 else ("diffusers", "app")
        images = {}
        for name in order:
            elapsed, images[name] = timed(app if name == "app" else plain)
            times[name].append(elapsed)
        identical &= same_pixels(images["app"], images["diffusers"])
    ratio_paired = statistics.median(a / b for a, b in zip(times["app"], times["diffusers"]))
    print_table(f"(a) app call vs pipe(...), {N} steps; target app/diffusers <= {RATIO_TARGET:.2f}",
                ["case", "best", "median", "per step (median)"],
                [[name, seconds(min(values)), seconds(statistics.median(values)),
                  f"{statistics.median(values) / N * 1e3:.1f} ms"] for name, values in times.items()])
    print(f"paired ratio (median over repeats of app/diffusers run back to back): {ratio_paired:.3f} "
          f"({'ok' if ratio_paired <= RATIO_TARGET else 'MISSED'}); ratio of bests "
          f"{min(times['app']) / min(times['diffusers']):.3f}; pixels {'identical' if identical else 'DIFFERENT'}")
    del pipe  # the switches below must be able to free it

    rows, alive_after = [], []
    switch_request = TextToImageRequest(model=model, prompt=PROMPT, steps=2, width=args.size, height=args.size,
                                        seed=args.seed, scheduler=args.scheduler)
    unets = []
    names = [entry.name for entry in entries]
    for switch in range(1, args.switches + 1):
        name = names[switch % 2]
        run = TextToImageRun(studio, replace(switch_request, model=name))
        for _ in run:
            pass
        unets.append(weakref.ref(run.pipeline.unet))
        del run
        synchronize()
        alive = sum(ref() is not None for ref in unets)
        alive_after.append(alive)
        cuda = mib(torch.cuda.memory_allocated()) if torch.cuda.is_available() else "-"
        rows.append([switch, name, ",".join(studio.cache.loaded()), mib(studio.cache.total_bytes()), alive, cuda,
                     mib(resident_bytes())])
    print_table(f"(b) {args.switches} model switches with one cache slot (generate {switch_request.steps} steps "
                f"after each)", ["switch", "model", "cached", "cache bytes", "UNets alive", "CUDA allocated",
                                 "process RSS"], rows)
    first, last = rows[0], rows[-1]
    if torch.cuda.is_available():
        print(f"CUDA allocated after switch {args.switches} vs after switch 1: {last[5]} vs {first[5]}")
    print(f"process RSS after switch {args.switches} vs after switch 1: {last[6]} vs {first[6]} "
          f"(RSS includes memory the allocator keeps for reuse)")
    finite = defaults_vs_plain(args, entries[0], work)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")

    failures = []
    if not finite:
        failures.append("the VAE decode in the app's dtype produced NaN or infinite values")
    if not identical:
        failures.append("the app's images differ from pipe(...)'s")
    if any(alive != 1 for alive in alive_after):
        failures.append(f"evicted models stayed alive: {alive_after}")
    for failure in failures:
        print(f"\nFAIL: {failure}", file=sys.stderr)
    return 1 if failures else 0


def defaults_vs_plain(args: argparse.Namespace, entry: ModelEntry, work: Path) -> bool:
    """(c): it/s of the app at this device's defaults vs a plain pipeline as a notebook loads it; returns whether
    the app's VAE decode stayed finite."""
    plain_dtype = torch.float16 if args.device.startswith("cuda") else torch.float32
    plain = StableDiffusionPipeline.from_pretrained(entry.source, dtype=plain_dtype).to(args.device)
    reference = StableDiffusionPipeline.from_pretrained(entry.source, dtype=torch.float32).to(args.device)
    for pipeline in (plain, reference):
        pipeline.set_progress_bar_config(disable=True)
    dtype = default_dtype(args.device)
    variants = {f"app ({str(dtype).removeprefix('torch.')})": Studio(Settings(
        device=args.device, dtype=dtype, data_dir=work / "data-c", offline=False), Catalog([entry]))}
    if args.compile:
        variants[f"app ({str(dtype).removeprefix('torch.')}, compiled)"] = Studio(Settings(
            device=args.device, dtype=dtype, compile=True, data_dir=work / "data-c", offline=False), Catalog([entry]))
    request = TextToImageRequest(model=entry.name, prompt=PROMPT, steps=args.steps, width=args.size,
                                 height=args.size, num_images=args.num_images, seed=args.seed, scheduler=args.scheduler)

    def plain_call(pipeline) -> list:
        generators = [torch.Generator("cpu").manual_seed(args.seed + i) for i in range(args.num_images)]
        pipeline.scheduler = TEXT_TO_IMAGE_SCHEDULERS[args.scheduler].from_config(pipeline.scheduler.config)
        return pipeline(PROMPT, num_inference_steps=args.steps, width=args.size, height=args.size,
                        num_images_per_prompt=args.num_images, generator=generators).images

    def app_call(studio) -> list:
        run = TextToImageRun(studio, request)
        for _ in run:
            pass
        return run.images

    cases = {name: (lambda studio=studio: app_call(studio)) for name, studio in variants.items()}
    cases[f"diffusers ({str(plain_dtype).removeprefix('torch.')})"] = lambda: plain_call(plain)
    float32_images = plain_call(reference)
    rows = []
    for name, case in cases.items():
        case()  # warm up (and, compiled, compile)
        times = [timed(case)[0] for _ in range(args.repeats)]
        images = case()
        difference = np.mean([np.abs(np.asarray(a, float) - np.asarray(b, float)).mean()
                              for a, b in zip(images, float32_images)])
        rows.append([name, f"{args.steps / statistics.median(times):.2f}", seconds(statistics.median(times)),
                     f"{difference:.2f}"])
    base = float(rows[-1][1])
    for row in rows:
        row.insert(2, f"{float(row[1]) / base:.2f}x")
    print_table(f"(c) the app's defaults vs a plain pipeline, {args.size}x{args.size}, {args.steps} steps",
                ["case", "it/s", "vs plain", "median", "pixel MAD vs float32"], rows)

    pipeline = next(iter(variants.values())).pipeline(entry.name, TEXT_TO_IMAGE)
    with torch.no_grad():
        generator = torch.Generator("cpu").manual_seed(args.seed)
        latents = pipeline(PROMPT, num_inference_steps=args.steps, width=args.size, height=args.size,
                           generator=generator, output_type="latent").images
        decoded = pipeline.vae.decode(latents / pipeline.vae.config.scaling_factor).sample
    finite = bool(torch.isfinite(decoded).all())
    print(f"VAE decode in {pipeline.vae.dtype}: {'finite' if finite else 'NaN or infinite values'} "
          f"(range {decoded.min().item():.2f} to {decoded.max().item():.2f})")
    return finite


if __name__ == "__main__":
    sys.exit(main())
