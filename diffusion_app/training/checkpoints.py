"""What the trainer leaves behind while it runs: progress lines, checkpoints that resume, and a clean stop."""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

from accelerate import Accelerator

CHECKPOINT_PREFIX = "checkpoint-"


class ProgressLog:
    """Append-only JSON lines that the jobs panel reads while training runs."""

    def __init__(self, path: Path, enabled: bool):
        self.path = path
        self.enabled = enabled

    def write(self, **record) -> None:
        if self.enabled:
            with self.path.open("a") as log:
                log.write(json.dumps({"time": round(time.time(), 3), **record}) + "\n")

    def drop_steps_after(self, step: int) -> None:
        """On resume, forget what was logged after the checkpoint: those steps are trained again."""
        if not (self.enabled and self.path.exists()):
            return
        lines = self.path.read_text().splitlines()
        kept = [line for line in lines if json.loads(line).get("step", 0) <= step]
        self.path.write_text("".join(line + "\n" for line in kept))


class StopRequest:
    """Set by SIGTERM; the loop checkpoints and exits at the end of the current step."""

    def __init__(self):
        self.requested = False
        signal.signal(signal.SIGTERM, self._request)

    def _request(self, signum, frame) -> None:
        self.requested = True


def latest_checkpoint(output_dir: Path) -> Path | None:
    checkpoints = sorted(output_dir.glob(CHECKPOINT_PREFIX + "*"), key=checkpoint_step)
    return checkpoints[-1] if checkpoints else None


def checkpoint_step(path: Path) -> int:
    return int(path.name.removeprefix(CHECKPOINT_PREFIX))


def save_checkpoint(accelerator: Accelerator, output_dir: Path, step: int, total_limit: int | None) -> Path:
    """accelerator.save_state under a temporary name, renamed once complete (so a killed trainer never
    leaves half a checkpoint to resume from); then only the newest total_limit checkpoints are kept."""
    path = output_dir / f"{CHECKPOINT_PREFIX}{step}"
    partial = output_dir / f".{path.name}.partial"
    if accelerator.is_main_process:
        shutil.rmtree(partial, ignore_errors=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(path, ignore_errors=True)
        partial.rename(path)
        if total_limit is not None:
            existing = sorted(output_dir.glob(CHECKPOINT_PREFIX + "*"), key=checkpoint_step)
            for old in existing[: max(0, len(existing) - total_limit)]:
                shutil.rmtree(old)
    return path
