"""A job's progress, read from the JSON lines the trainer appends to <output_dir>/progress.jsonl, and how it
ended once its trainer has exited."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ...catalog import entry_from_folder
from .store import CANCELLED, FAILED, FINISHED, INTERRUPTED

RATE_WINDOW = 20  # loss rows used for the steps/s behind the ETA


@dataclass(frozen=True)
class JobProgress:
    step: int = 0
    total_steps: int | None = None
    losses: tuple[tuple[int, float], ...] = ()  # (step, mean loss since the previous row)
    images_per_s: float | None = None
    steps_per_s: float | None = None  # wall-clock rate of the current run, samples and checkpoints included
    samples: Path | None = None  # the latest sample grid
    finished_pipeline: Path | None = None  # the model folder named by this run's "finished" event
    stopped: bool = False  # this run saved a checkpoint on SIGTERM and exited

    @property
    def fraction(self) -> float:
        return min(1.0, self.step / self.total_steps) if self.total_steps else 0.0

    @property
    def eta_seconds(self) -> float | None:
        if not self.steps_per_s or self.total_steps is None:
            return None
        return max(0, self.total_steps - self.step) / self.steps_per_s


def read_records(path: Path) -> list[dict]:
    """Every complete line; a line the trainer is still writing is left for the next read."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def read_progress(path: Path, run_started: float | None = None) -> JobProgress:
    """The progress so far; events count only when written by the run launched at run_started."""
    records = read_records(path)
    folder = path.parent
    current = [r for r in records if run_started is None or r.get("time", 0) >= run_started]
    starts = [r for r in records if r.get("event") == "started"]
    rows = [r for r in records if "loss" in r]
    recent = [r for r in current if "loss" in r][-RATE_WINDOW:]
    rate = None
    if len(recent) >= 2 and recent[-1]["time"] > recent[0]["time"]:
        rate = (recent[-1]["step"] - recent[0]["step"]) / (recent[-1]["time"] - recent[0]["time"])
    samples = [r for r in records if r.get("event") == "samples"]
    finished = [r for r in current if r.get("event") == "finished"]
    return JobProgress(
        step=max((r.get("step", 0) for r in records), default=0),
        total_steps=starts[-1]["total_steps"] if starts else None,
        losses=tuple((r["step"], r["loss"]) for r in rows),
        images_per_s=rows[-1]["images_per_s"] if rows else None,
        steps_per_s=rate,
        samples=folder / "samples" / Path(samples[-1]["path"]).name if samples else None,
        finished_pipeline=folder / Path(finished[-1]["pipeline"]).name if finished else None,
        stopped=any(r.get("event") == "stopped" for r in current),
    )


def ending(progress: JobProgress, checkpoint: int | None, cancel_requested: bool, returncode: int | None
           ) -> tuple[str, str | None]:
    """The status of a job whose trainer has exited, and the message that says why and what resuming does
    (returncode None: the trainer was not this server's child, as after a server restart)."""
    resume = (f"resume continues from its checkpoint at step {checkpoint}" if checkpoint
              else "resume starts it again from the beginning")
    at_step = f"at step {progress.step}"
    if progress.finished_pipeline and entry_from_folder(progress.finished_pipeline) is not None:
        return FINISHED, None
    if cancel_requested:
        return CANCELLED, f"Cancelled {at_step}; {resume}."
    if progress.stopped:
        return INTERRUPTED, f"Stopped from outside the app {at_step}; {resume}."
    if returncode is None:
        return INTERRUPTED, (f"The trainer ended {at_step} while the server was not watching it (a server restart); "
                             f"{resume}.")
    return FAILED, f"The trainer exited with code {returncode} {at_step} (see its log); {resume}."
