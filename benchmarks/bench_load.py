"""Load test on loopback: many gradio_client users at once against `python app.py`, across tabs.

    python benchmarks/bench_load.py [--users 16 --requests 4 --timeout 600] [--url http://127.0.0.1:7860/ | --ray]

Without --url it starts the app on tiny random-weight models (built in a temporary folder, no network).
First every request is run alone (the single-user reference), then all users send theirs at once. Printed:
success rate (target 100%), p50/p95 latency alone and under load, throughput, and whether every result under
load equals its single-user result for the same seed. With --ray it does this twice, on the local backend and
on a local Ray instance with two generation replicas (docs/ray.md), prints them side by side, and checks that
both backends give the same images. Exits 1 when a request fails or a result differs.
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "tests"))  # running_app: starts app.py as the tests do

import diffusion_app  # noqa: F401  (first: lets diffusers import where torchvision is CPU-incompatible)

import argparse
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from gradio_client import Client
from PIL import Image

from diffusion_app.demo_model import build_class_conditional_pipeline, build_ddpm_pipeline
from report import print_table
from running_app import running_app


def request_for(user: int, index: int) -> tuple[str, tuple]:
    """The index-th request of a user: tabs in turn, a seed of its own."""
    seed = 1000 * user + index
    tab = (user + index) % 3
    if tab == 0:
        return "/generate_unconditional", ("load-ddpm", 1, 20, seed, False)
    if tab == 1:
        return "/generate_ddim", ("load-ddpm", 20, 0.0, 1, 10, seed, False)
    return "/generate_digits", ("load-digits", [str(seed % 10)], 1, 20, "DDIM", seed, False)


def final_pixels(api_name: str, result) -> list[np.ndarray]:
    gallery = result[0] if api_name != "/generate_digits" else result[2]
    return [np.asarray(Image.open(item["image"])) for item in gallery]


def timed_call(url: str, api_name: str, args: tuple) -> tuple[float, list[np.ndarray] | str]:
    start = time.perf_counter()
    try:
        result = Client(url, verbose=False).predict(*args, api_name=api_name)
        return time.perf_counter() - start, final_pixels(api_name, result)
    except Exception as err:  # a failed request is a result of the load test, not a crash of it
        return time.perf_counter() - start, f"{type(err).__name__}: {err}"


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def run(url: str, users: int, requests: int, timeout: float) -> dict:
    """Every request alone, then all users at once; the latencies, wall time, failures and mismatches."""
    plan = [(user, index) for user in range(users) for index in range(requests)]
    reference = {}
    alone = []
    for user, index in plan:
        seconds, pixels = timed_call(url, *request_for(user, index))
        if isinstance(pixels, str):
            raise SystemExit(f"single-user request failed: {pixels}")
        reference[user, index] = pixels
        alone.append(seconds)

    def user_session(user: int) -> list[tuple[int, float, list | str]]:
        return [(index, *timed_call(url, *request_for(user, index))) for index in range(requests)]

    start = time.perf_counter()
    with ThreadPoolExecutor(users) as pool:
        sessions = list(pool.map(user_session, range(users), timeout=timeout))
    wall = time.perf_counter() - start

    latencies, failures, mismatches = [], [], 0
    for user, results in enumerate(sessions):
        for index, seconds, pixels in results:
            latencies.append(seconds)
            if isinstance(pixels, str):
                failures.append(pixels)
            elif any(not np.array_equal(a, b) for a, b in zip(pixels, reference[user, index], strict=True)):
                mismatches += 1
    return {"alone": alone, "latencies": latencies, "wall": wall, "failures": failures, "mismatches": mismatches,
            "reference": reference}


def report(results: dict[str, dict], users: int, requests: int) -> int:
    """One column per backend, alone and under load; 0 when every request succeeded with its reference images."""
    rows = [["p50 latency alone (s)"], ["p50 latency under load (s)"], ["p95 latency under load (s)"],
            ["throughput alone (req/s)"], ["throughput under load (req/s)"]]
    for measured in results.values():
        alone, latencies = measured["alone"], measured["latencies"]
        for row, value in zip(rows, [statistics.median(alone), percentile(latencies, 50), percentile(latencies, 95),
                                     len(alone) / sum(alone), len(latencies) / measured["wall"]]):
            row.append(f"{value:.2f}")
    print_table(f"{users} users x {requests} requests across three tabs ({users * requests} requests)",
                ["", *results], rows)
    failed = False
    for backend, measured in results.items():
        total, failures = len(measured["latencies"]), measured["failures"]
        succeeded = total - len(failures)
        print(f"\n{backend}: success {succeeded}/{total} ({succeeded / total:.0%}, target 100%); results equal to the "
              f"single-user result for their seed: {succeeded - measured['mismatches']}/{succeeded}")
        for failure in failures[:5]:
            print("failed:", failure)
        failed |= bool(failures or measured["mismatches"])
    references = [measured["reference"] for measured in results.values()]
    if len(references) == 2:
        same = sum(all(np.array_equal(a, b) for a, b in zip(references[0][key], references[1][key], strict=True))
                   for key in references[0])
        print(f"single-user results equal across the backends: {same}/{len(references[0])}")
        failed |= same != len(references[0])
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--requests", type=int, default=4, help="requests per user (default: 4)")
    parser.add_argument("--timeout", type=float, default=600, help="bound on the loaded phase in seconds")
    parser.add_argument("--url", help="an app already running (its models must include load-ddpm/load-digits)")
    parser.add_argument("--ray", action="store_true",
                        help="also run the app on a local Ray instance with two replicas, and compare")
    args = parser.parse_args()
    if args.url:
        return report({"app": run(args.url, args.users, args.requests, args.timeout)}, args.users, args.requests)
    with tempfile.TemporaryDirectory() as tmp:
        models_dir = Path(tmp)
        build_ddpm_pipeline(models_dir / "load-ddpm", sample_size=16, block_out_channels=(16, 32), seed=0)
        build_class_conditional_pipeline(models_dir / "load-digits", [str(d) for d in range(10)], sample_size=16,
                                         channels=1, block_out_channels=(16, 32), seed=1)
        env = {**os.environ, "DS_MODELS_DIR": str(models_dir), "DS_DATA_DIR": str(models_dir / "data"),
               "DS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
        backends = {"local backend": env}
        if args.ray:
            backends["Ray, 2 replicas"] = {**env, "DS_RAY_ADDRESS": "local", "DS_RAY_MIN_REPLICAS": "2"}
        results = {}
        for backend, backend_env in backends.items():
            with running_app(backend_env, models_dir / "app.log", start_timeout=300) as url:
                results[backend] = run(url, args.users, args.requests, args.timeout)
        return report(results, args.users, args.requests)


if __name__ == "__main__":
    sys.exit(main())
