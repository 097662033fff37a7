"""Generation latency while a training job runs in the background, against the same requests with no training.

    python benchmarks/bench_jobs.py [--steps N --repeats R --niceness K --threads T --device cpu]

A JobManager (as the app runs it) trains a job on random 32x32 images through `accelerate launch`
in its own process group. Generation requests go through the service (service.generation.sampling.sample, as
the Unconditional tab calls it) and, as the baseline, through a plain diffusers DDPMPipeline call,
both on the same random-weight 32x32 model in this process. Each is timed with no training, then
again while the trainer runs (after its start-up), then the job is cancelled. The report gives the
median latencies, the slowdown (during / idle), and the trainer's throughput meanwhile.

--niceness sets the trainer's nice value (the app uses job_process.NICENESS, 10); 0 shows what the
server's requests would face without it. Exits 1 when the trainer does not start.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import diffusion_app  # noqa: F401  (first: it makes torchvision importable for diffusers on a CPU-only torch)

import argparse
import statistics
import tempfile
import time
from typing import Callable

import torch
from diffusers import DDPMPipeline

from diffusion_app.demo_model import build_ddpm_pipeline
from diffusion_app.service.jobs.manager import process as job_process
from diffusion_app.service.jobs.options import JobOptions
from diffusion_app.service.jobs.manager import QUEUED, RUNNING, JobManager
from diffusion_app.service.generation.sampling import SamplingRequest, sample
from diffusion_app.service.studio import Studio
from diffusion_app.settings import Settings
from measure import write_random_images
from report import print_table

MODEL_NAME = "bench-ddpm-32"
TRAINER_START_TIMEOUT = 300


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="denoising steps per request (default: 20)")
    parser.add_argument("--repeats", type=int, default=7, help="timed requests per case and phase (default: 7)")
    parser.add_argument("--niceness", type=int, default=job_process.NICENESS,
                        help=f"the trainer's nice value (default: the app's, {job_process.NICENESS})")
    parser.add_argument("--model-size", default="small", help="the trained UNet: tiny, small, medium (default: small)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--train-steps", type=int, default=300,
                        help="the job's length; it is cancelled once the requests are timed (default: 300)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch CPU threads in this process (default: torch's choice)")
    return parser.parse_args(argv)


def latencies(cases: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    """Seconds per request, the cases interleaved."""
    results = {name: [] for name in cases}
    for _ in range(repeats):
        for name, request in cases.items():
            start = time.perf_counter()
            request()
            results[name].append(time.perf_counter() - start)
    return results


def trained_steps(jobs: JobManager, job_id: int) -> tuple[int, float]:
    return jobs.progress(jobs.job(job_id)).step, time.perf_counter()


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    args = parse_args(argv)
    job_process.NICENESS = args.niceness
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-jobs-") as work:
        return benchmark(args, Path(work), started)


def benchmark(args: argparse.Namespace, work: Path, started: float) -> int:
    build_ddpm_pipeline(work / "models" / MODEL_NAME, sample_size=32, block_out_channels=(32, 64), seed=0)
    settings = Settings(device=args.device, models_dir=work / "models", data_dir=work / "data", offline=True)
    studio = Studio(settings)
    request = SamplingRequest(MODEL_NAME, steps=args.steps, seed=0)
    pipeline = DDPMPipeline.from_pretrained(work / "models" / MODEL_NAME).to(args.device)
    pipeline.set_progress_bar_config(disable=True)
    cases = {
        "service sample()": lambda: sample(studio, request),
        "DDPMPipeline": lambda: pipeline(num_inference_steps=args.steps, generator=torch.Generator().manual_seed(0)),
    }
    for request_once in cases.values():  # warm-up: load the model into the cache, first-call costs
        request_once()

    print("Jobs benchmark: generation latency with and without a training job in the background")
    print(f"model    {MODEL_NAME}: UNet2DModel 32x32 RGB, block_out_channels (32, 64); {args.steps} steps a request")
    print(f"trainer  accelerate launch, {args.model_size} UNet 32x32, batch {args.batch_size}, nice {args.niceness}; "
          f"device {args.device}, {torch.get_num_threads()} torch threads in this process")

    idle = latencies(cases, args.repeats)
    jobs = JobManager(studio).start()
    try:
        upload_id, _ = jobs.uploads.inspect(write_random_images(work / "images", 64))
        job = jobs.submit(upload_id, JobOptions(name="bench", model_size=args.model_size, resolution=32,
                                                steps=args.train_steps, batch_size=args.batch_size,
                                                sample_every=0, sample_steps=1, checkpoint_every=args.train_steps))
        deadline = time.monotonic() + TRAINER_START_TIMEOUT
        while jobs.progress(jobs.job(job.id)).step == 0:  # past start-up: imports, data, first steps
            current = jobs.job(job.id)
            if current.status not in (QUEUED, RUNNING) or time.monotonic() > deadline:
                print(f"error: the trainer did not get going ({current.status}):\n{jobs.log_tail(current)}",
                      file=sys.stderr)
                return 1
            time.sleep(0.2)
        first_step, first_time = trained_steps(jobs, job.id)
        during = latencies(cases, args.repeats)
        last_step, last_time = trained_steps(jobs, job.id)
        still_running = jobs.job(job.id).status == RUNNING
        jobs.cancel(job.id)
        while jobs.job(job.id).status == RUNNING:  # the trainer checkpoints, then its processes exit
            time.sleep(0.5)
    finally:
        jobs.close()

    rows = []
    for name in cases:
        quiet, busy = statistics.median(idle[name]), statistics.median(during[name])
        rows.append([name, f"{quiet:.3f}", f"{busy:.3f}", f"{busy / quiet:.2f}", f"{max(during[name]):.3f}"])
    print_table("median latency per request, seconds (lower is better)",
                ["request", "no training", "during training", "during / none", "worst during"], rows)
    service_ratio = statistics.median(during["service sample()"]) / statistics.median(idle["service sample()"])
    plain_ratio = statistics.median(during["DDPMPipeline"]) / statistics.median(idle["DDPMPipeline"])
    rate = (last_step - first_step) / (last_time - first_time)
    print(f"\ntrainer while requests ran: {last_step - first_step} steps in {last_time - first_time:.1f} s "
          f"({rate:.2f} steps/s, {rate * args.batch_size:.1f} images/s); still running at the end: {still_running}")
    print(f"slowdown: service {service_ratio:.2f}x, plain diffusers {plain_ratio:.2f}x "
          f"(service/diffusers during training: {service_ratio / plain_ratio:.2f})")
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
