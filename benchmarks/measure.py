"""Measuring helpers the benchmark scripts share: timing, interleaved repeats, pixel comparison, test images."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image


def timed(fn: Callable[[], list]) -> tuple[float, list]:
    synchronize()
    start = time.perf_counter()
    result = fn()
    synchronize()
    return time.perf_counter() - start, result


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def run_interleaved(cases: dict[str, Callable[[], list]], repeats: int) -> tuple[dict[str, list[float]], list[dict]]:
    """Time each case `repeats` times, alternating the order every round; returns times and each round's images."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    rounds = []
    names = list(cases)
    for round_index in range(repeats):
        images = {}
        for name in names if round_index % 2 == 0 else reversed(names):
            elapsed, images[name] = timed(cases[name])
            times[name].append(elapsed)
        rounds.append(images)
    return times, rounds


def same_pixels(left: list, right: list) -> bool:
    return len(left) == len(right) and all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(left, right))


def seconds(value: float) -> str:
    return f"{value:.3f} s"


def write_random_images(folder: Path, count: int, size: int = 32) -> list[Path]:
    """`count` random RGB PNGs in a new folder, the same for every run."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    paths = [folder / f"{index:04d}.png" for index in range(count)]
    for path in paths:
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(path)
    return paths
