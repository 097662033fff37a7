"""Process memory while switching models: the app's cache against plain diffusers pipelines, in one process.

    python benchmarks/bench_memory.py [--models 6 --switches 20 --cache-models 2 --device cpu]

Each switch loads the next model (round robin) and samples one step. The baseline keeps exactly one
DDPMPipeline at a time (the previous one deleted), the least memory plain diffusers code can hold; the app
keeps up to --cache-models pipelines for reuse. Printed: resident memory (and CUDA memory on a GPU) after the
first model and after every switch, and the app's growth over the baseline's.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import diffusion_app  # noqa: F401  (first: lets diffusers import where torchvision is CPU-incompatible)

import argparse
import gc
import tempfile

import psutil
import torch
from diffusers import DDPMPipeline

from diffusion_app.demo_model import build_ddpm_pipeline
from diffusion_app.service.models.cache import release_memory
from diffusion_app.service.generation.sampling import SamplingRequest, sample
from diffusion_app.service.studio import Studio
from diffusion_app.settings import Settings
from report import print_table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=6, help="distinct models to switch between (default: 6)")
    parser.add_argument("--switches", type=int, default=20)
    parser.add_argument("--cache-models", type=int, default=2, help="the app's cache budget (default: 2)")
    parser.add_argument("--device", default="cpu")
    return parser.parse_args(argv)


def memory_mb(device: str) -> tuple[float, float]:
    """(resident set size, CUDA memory allocated) in MB, after garbage collection."""
    gc.collect()
    release_memory()
    cuda = torch.cuda.memory_allocated() / 2**20 if device.startswith("cuda") else 0.0
    return psutil.Process().memory_info().rss / 2**20, cuda


def run_baseline(folders: list[Path], switches: int, device: str) -> list[tuple[float, float]]:
    readings, pipeline = [], None
    for switch in range(switches + 1):
        del pipeline
        pipeline = DDPMPipeline.from_pretrained(folders[switch % len(folders)]).to(device)
        pipeline.set_progress_bar_config(disable=True)
        pipeline(batch_size=1, num_inference_steps=1, generator=torch.Generator().manual_seed(switch))
        readings.append(memory_mb(device))
    return readings


def run_app(models_dir: Path, names: list[str], switches: int, cache_models: int, device: str):
    studio = Studio(Settings(models_dir=models_dir, data_dir=models_dir / "data", offline=True, device=device,
                             cache_max_models=cache_models))
    readings = []
    for switch in range(switches + 1):
        sample(studio, SamplingRequest(names[switch % len(names)], num_images=1, steps=1, seed=switch))
        readings.append(memory_mb(device))
    return readings, studio.cache.stats()


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        models_dir = Path(tmp)
        folders = [build_ddpm_pipeline(models_dir / f"model-{i}", sample_size=32, block_out_channels=(96, 192),
                                       seed=i) for i in range(args.models)]
        names = [folder.name for folder in folders]
        app, stats = run_app(models_dir, names, args.switches, args.cache_models, args.device)
        baseline = run_baseline(folders, args.switches, args.device)
    model_mb = max(model["bytes"] for model in stats["models"].values()) / 2**20
    rows = [[f"after switch {i}" if i else "first model", f"{b[0]:.0f}", f"{a[0]:.0f}", f"{b[1]:.0f}", f"{a[1]:.0f}"]
            for i, (b, a) in enumerate(zip(baseline, app)) if i in (0, 1, 5, 10, args.switches)]
    print_table(f"Resident memory (MB), {args.models} models of {model_mb:.1f} MB, cache budget {args.cache_models}",
                ["", "diffusers RSS", "app RSS", "diffusers CUDA", "app CUDA"], rows)
    app_growth, base_growth = app[-1][0] - app[0][0], baseline[-1][0] - baseline[0][0]
    print(f"\ngrowth over {args.switches} switches: app {app_growth:+.1f} MB, diffusers {base_growth:+.1f} MB; "
          f"app - diffusers = {app_growth - base_growth:+.1f} MB "
          f"(the cache holds up to {args.cache_models - 1} more model(s) of {model_mb:.1f} MB for reuse)")
    print(f"cache: {stats['misses']} loads, {stats['evictions']} evictions, {len(stats['models'])} loaded at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
