"""What a training job leaves in its folder, read back for the jobs panel: progress, checkpoints, log.

Each job has <data dir>/jobs/<id>/ with train.log (the trainer's output) and output/ (progress.jsonl,
checkpoints, sample grids, the final pipeline). Reading is kept apart from running the queue
(jobs.py) because the panel asks for it every few seconds while the queue thread writes rows.
"""

from __future__ import annotations

from pathlib import Path

from ...training.checkpoints import checkpoint_step, latest_checkpoint
from .options import LORA_KINDS
from .options import OUTPUT_FOLDER
from .progress import JobProgress, read_progress
from .store import Job

LOG_FILE = "train.log"
LOG_TAIL_BYTES = 16_384


class JobFolders:
    def __init__(self, jobs_dir: Path):
        self.jobs_dir = jobs_dir
        self._progress = {}  # job id -> (what the progress file looked like, JobProgress read from it)

    def folder(self, job_id: int) -> Path:
        return self.jobs_dir / str(job_id)

    def pipeline_folder(self, job: Job) -> Path:
        """The finished model's folder: `pipeline/` (a diffusers pipeline) or `lora/` (LoRA adapters)."""
        folder = "lora" if job.config.get("mode") in LORA_KINDS else "pipeline"
        return (self.folder(job.id) / OUTPUT_FOLDER / folder).resolve()

    def progress(self, job: Job) -> JobProgress:
        """Read again only when the file has changed: the jobs panel asks every few seconds."""
        path = self.folder(job.id) / OUTPUT_FOLDER / "progress.jsonl"
        try:
            signature = (path.stat().st_mtime_ns, path.stat().st_size, job.launched_at)
        except FileNotFoundError:
            signature = (None, None, job.launched_at)
        cached = self._progress.get(job.id)
        if cached is None or cached[0] != signature:
            cached = self._progress[job.id] = (signature, read_progress(path, job.launched_at))
        return cached[1]

    def checkpoint_step(self, job: Job) -> int | None:
        checkpoint = latest_checkpoint(self.folder(job.id) / OUTPUT_FOLDER)
        return checkpoint_step(checkpoint) if checkpoint else None

    def log_tail(self, job: Job, lines: int = 30) -> str:
        log = self.folder(job.id) / LOG_FILE
        if not log.is_file():
            return ""
        with log.open("rb") as file:
            file.seek(max(0, log.stat().st_size - LOG_TAIL_BYTES))
            text = file.read().decode("utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])
