"""The project's trainer as the training benchmarks time it: images, seconds and loss per logged window."""

from __future__ import annotations

import json
from pathlib import Path

from accelerate.state import AcceleratorState

from diffusion_app.training.config import TrainingConfig
from diffusion_app.training.train import train


def trainer_windows(config: TrainingConfig) -> list[tuple[int, float, float]]:
    """Run the trainer; (images, seconds, mean loss) per logged window, from progress.jsonl."""
    AcceleratorState._reset_state(reset_partial_state=True)  # accelerate keeps one mixed precision per process
    train(config)
    records = [json.loads(line) for line in (Path(config.output_dir) / "progress.jsonl").read_text().splitlines()]
    windows, previous_step = [], 0
    for record in records:
        if "images_per_s" in record:
            images = (record["step"] - previous_step) * config.train_batch_size
            windows.append((images, images / record["images_per_s"], record["loss"]))
            previous_step = record["step"]
    return windows


def steady_throughput(windows: list[tuple]) -> float:
    """Images/s over every window but the first (start-up); a window starts (images, seconds, ...)."""
    steady = windows[1:] or windows
    return sum(window[0] for window in steady) / sum(window[1] for window in steady)
