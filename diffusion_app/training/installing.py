"""How every bundle recipe ends: training to the end (or saying how to resume), then copying the trained folder
into models/ with the config that trained it and its data's attribution."""

from __future__ import annotations

import shutil
from pathlib import Path

from .config import TrainingConfig
from .train import train


def train_to_the_end(config: TrainingConfig, stage: str) -> Path:
    """The saved model folder; a run stopped early (SIGTERM) says to run the same command, which resumes it."""
    trained = train(config)
    if trained is None:
        raise RuntimeError(f"{stage} stopped before the end; run the same command to resume.")
    return trained


def install(trained: Path, config: TrainingConfig, target: Path, attribution: str | None) -> Path:
    """`trained` copied to `target` (replacing it), with training_config.json and ATTRIBUTION.txt beside it."""
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(trained, target)
    shutil.copy(Path(config.output_dir) / "config.json", target / "training_config.json")
    if attribution:
        (target / "ATTRIBUTION.txt").write_text(attribution)
    return target
