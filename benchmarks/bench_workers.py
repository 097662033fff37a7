"""Generation workers, one per GPU: requests sent at once against the same requests one after another, in one
process, through the workers the app serves with (service/models/workers.py).

    python benchmarks/bench_workers.py --device cuda [--sd15 --size 512]    # every visible GPU gets a worker
    python benchmarks/bench_workers.py --devices cpu cpu --size 64          # two workers on a CPU: it runs

Each worker loads its own copy of a random-weight Stable Diffusion pipeline (tiny, or with --sd15 Stable
Diffusion 1.5's architecture). Printed: the workers and their devices, seconds for 2 x workers requests in turn
and at once, and the speed-up (ideal: the number of workers, when each has a GPU of its own). Exits 1 when the
app made fewer workers than there are GPUs, or when images made at once differ from those made in turn.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import diffusion_app  # noqa: F401  (first: lets diffusers import where torchvision is CPU-incompatible)

import argparse
import tempfile
import threading
import time

import torch

from diffusion_app.catalog import TEXT_TO_IMAGE, Catalog, entry_from_spec
from diffusion_app.service.generation.text2img import TextToImageRequest, TextToImageRun
from diffusion_app.service.models.workers import serve_on_a_worker
from diffusion_app.service.studio import Studio
from diffusion_app.settings import Settings
from diffusion_app.tiny_sd import build_sd15_architecture_pipeline, build_tiny_sd_pipeline
from measure import same_pixels, seconds, synchronize

PROMPT = "a lighthouse on a cliff at dawn, oil painting"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cuda: one worker per visible GPU")
    parser.add_argument("--devices", nargs="*", default=[], help="workers' devices, as DS_DEVICES lists them")
    parser.add_argument("--dtype", default="float32", help="float32, float16 or bfloat16")
    parser.add_argument("--sd15", action="store_true", help="Stable Diffusion 1.5's architecture, not a tiny one")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    base = (build_sd15_architecture_pipeline(work / "base", seed=0) if args.sd15
            else build_tiny_sd_pipeline(work / "base", seed=0))
    settings = Settings(data_dir=work / "data", offline=True, device=args.device, devices=tuple(args.devices),
                        dtype=getattr(torch, args.dtype))
    studio = Studio(settings, Catalog([entry_from_spec("base", str(base), hub_kind=TEXT_TO_IMAGE)]))
    workers = studio.pool.workers
    gpus = torch.cuda.device_count() if args.device == "cuda" and not args.devices else 0
    print(f"{len(workers)} workers on {', '.join(worker.device for worker in workers)} "
          f"({gpus} GPUs visible{'' if args.device == 'cuda' else ', not asked for'})")

    def generation(seed: int):
        """A request as a tab makes it: a generator the worker pool serves, yielding once per step."""
        def run(model):
            generation_run = TextToImageRun(studio, TextToImageRequest(
                model, PROMPT, steps=args.steps, width=args.size, height=args.size, seed=seed))
            yield from generation_run
            yield generation_run.images
        return serve_on_a_worker(studio.pool, run, model_of=lambda model: model)("base")

    def finished(seed: int, results: dict) -> None:
        *_, results[seed] = generation(seed)

    seeds = list(range(2 * len(workers)))
    for worker in workers:  # each loads its copy before the timing
        worker.cache.get("base")
    finished(len(seeds), {})  # and the first call's one-off costs are paid
    in_turn, at_once = {}, {}
    synchronize()
    start = time.perf_counter()
    for seed in seeds:
        finished(seed, in_turn)
    synchronize()
    in_turn_seconds = time.perf_counter() - start
    threads = [threading.Thread(target=finished, args=(seed, at_once)) for seed in seeds]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    synchronize()
    at_once_seconds = time.perf_counter() - start
    same = all(same_pixels(in_turn[seed], at_once[seed]) for seed in seeds)
    print(f"{len(seeds)} requests of {args.steps} steps at {args.size} px: in turn {seconds(in_turn_seconds)}, at once "
          f"{seconds(at_once_seconds)}: speed-up {in_turn_seconds / at_once_seconds:.2f}x (ideal {len(workers)}x); "
          f"images {'the same' if same else 'DIFFERENT'}")
    enough_workers = len(workers) >= gpus
    if not enough_workers:
        print(f"MISSED: {gpus} GPUs but {len(workers)} workers")
    return 0 if same and enough_workers else 1


if __name__ == "__main__":
    sys.exit(main())
