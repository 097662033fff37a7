"""Training jobs: a queue kept in SQLite, each job trained by `accelerate launch` in its own process group.

A job is a row (job_store.py) and a folder, <data dir>/jobs/<id>/: dataset/ (the upload's images
usable at its resolution), job.json (its TrainingConfig), train.log (the trainer's output) and
output/ (progress.jsonl, checkpoints, sample grids, the final pipeline). A thread polls every
second: it settles jobs whose trainer has exited and starts queued jobs, in order, while fewer than
max_concurrent_jobs run. A finished job's pipeline joins the catalog under the job's name, so every
tab that can use it lists it.

A server restart loses nothing: queued jobs stay queued, trainers still running are watched again,
and running jobs whose trainer is gone become interrupted. Resume continues from the last checkpoint.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import threading
import time
from dataclasses import asdict, replace

from ...catalog import UnknownModelError, entry_from_folder
from ...training.checkpoints import latest_checkpoint
from ...training.dataset_report import build_training_folder
from ...training.uploads import UploadLimits
from .base_models import base_model
from .folders import LOG_FILE, JobFolders
from .hub import push_folder
from .options import DATASET_FOLDER, OUTPUT_FOLDER, TEXT_KINDS, JobOptions, check_name, training_config
from .process import trainer_command
from .progress import ending
from .store import CANCELLED, FAILED, FINISHED, QUEUED, RESUMABLE, RUNNING, Job, JobStore, UnknownJobError
from .uploads import UploadArea
from ..studio import Studio
from .trainers import LocalTrainers, RayTrainers
from ..visitors import Visitor

logger = logging.getLogger(__name__)

POLL_SECONDS = 1.0
CANCEL_GRACE_SECONDS = 60.0  # then the whole process group is killed
SHUTDOWN_GRACE_SECONDS = 10.0  # for running trainers to checkpoint when the server stops
CONFIG_FILE = "job.json"


class JobManager(JobFolders):
    def __init__(self, studio: Studio):
        super().__init__(studio.settings.data_dir / "jobs")
        self.studio = studio
        self.settings = studio.settings
        self.uploads = UploadArea(self.settings.data_dir / "uploads", UploadLimits.from_settings(self.settings),
                                  self.settings)
        self.store = JobStore(self.jobs_dir / "jobs.db")
        self.trainers = (RayTrainers(self.settings, CANCEL_GRACE_SECONDS) if self.settings.ray is not None
                         else LocalTrainers(self.settings))
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # Running the queue.

    def start(self) -> "JobManager":
        """Recover from the last run, then poll in a background thread until close()."""
        self.recover()
        self._thread = threading.Thread(target=self._poll_forever, name="training-jobs", daemon=True)
        self._thread.start()
        atexit.register(self.close)
        return self

    def close(self, stop_jobs: bool = True) -> None:
        """Stop polling; with stop_jobs, running trainers checkpoint and stop (they can resume)."""
        atexit.unregister(self.close)
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if not stop_jobs or self.trainers.outlive_the_server:
            return
        running = self.store.with_status(RUNNING)
        for job in running:
            self.trainers.stop(job)
        deadline = time.monotonic() + SHUTDOWN_GRACE_SECONDS
        while any(self.trainers.is_running(job) for job in running) and time.monotonic() < deadline:
            time.sleep(0.2)
        with self._lock:
            for job in self.store.with_status(RUNNING):
                self._watch(job)

    def recover(self) -> None:
        """After a (re)start: settle jobs whose trainer is gone, list finished models, drop stale uploads."""
        with self._lock:
            for job in self.store.with_status(RUNNING):
                if not self.trainers.is_running(job):
                    self._settle(job, self.trainers.exit_code(job))
            for job in self.store.with_status(FINISHED):
                self._register(job)
        self.uploads.remove_stale()

    def poll(self) -> None:
        """One round: settle exited trainers, then start queued jobs while there is room."""
        with self._lock:
            for job in self.store.with_status(RUNNING):
                self._watch(job)
            room = self.settings.max_concurrent_jobs - len(self.store.with_status(RUNNING))
            for job in self.store.with_status(QUEUED)[: max(0, room)]:
                self._launch(job)

    def _poll_forever(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            try:
                self.poll()
            except Exception:
                logger.exception("polling training jobs failed")

    def _launch(self, job: Job) -> None:
        folder = self.folder(job.id)
        output = folder / OUTPUT_FOLDER
        if latest_checkpoint(output) is None:
            (output / "progress.jsonl").unlink(missing_ok=True)  # starting again from step 0
        launched = time.time()
        with (folder / LOG_FILE).open("a") as log:
            log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} starting the trainer ---\n")
        command = trainer_command(folder / CONFIG_FILE, job.config["mixed_precision"], cpu=self.trainers.cpu)
        try:
            found_by = self.trainers.launch(job, command, folder / LOG_FILE, folder)
        except OSError as err:
            self.store.update(job.id, status=FAILED, ended_at=time.time(),
                              message=f"The trainer could not start: {err}")
            return
        self.store.update(job.id, status=RUNNING, launched_at=launched, ended_at=None, cancel_requested=None,
                          message=None, **found_by)
        logger.info("job #%d (%s) started: %s", job.id, job.name, found_by)

    def _watch(self, job: Job) -> None:
        if self.trainers.is_running(job):
            if job.cancel_requested and time.time() - job.cancel_requested > CANCEL_GRACE_SECONDS:
                logger.warning("job #%d did not stop within %.0f s; killing its processes", job.id,
                               CANCEL_GRACE_SECONDS)
                self.trainers.kill(job)
            return
        self._settle(job, self.trainers.exit_code(job))

    def _settle(self, job: Job, returncode: int | None) -> None:
        """The trainer has exited: record how (returncode None: it was not this server's child)."""
        status, message = ending(self.progress(job), self.checkpoint_step(job), bool(job.cancel_requested), returncode)
        job = self.store.update(job.id, status=status, message=message, ended_at=time.time(), pid=None,
                                pid_created=None, ray_job_id=None)
        logger.info("job #%d (%s) %s", job.id, job.name, status)
        if status == FINISHED:
            self._register(job)

    # Submitting.

    def submit(self, upload_id: str, options: JobOptions, visitor: Visitor | None = None) -> Job:
        """Queue a job on an upload's images that are large enough for the chosen resolution; on a public server
        it belongs to the visitor, who may have at most DS_MAX_JOBS_PER_VISITOR queued or running."""
        upload, report = self.uploads.get(upload_id)
        if visitor is not None and not visitor.admin:
            waiting = [job for job in self.jobs(visitor) if job.status in (QUEUED, RUNNING)]
            if len(waiting) >= self.settings.max_jobs_per_visitor:
                raise ValueError(f"You have {len(waiting)} jobs queued or running, the most this server allows one "
                                 "visitor; start another when one has finished (or cancel one).")
        name = self._free_name(options.name)
        pretrained = None
        if options.base_model:
            options, pretrained = base_model(self.studio, options, visitor)
        if options.class_conditional and not report.class_names:
            raise ValueError("Class-conditional training needs one subfolder per class: upload a .zip of a folder "
                             "with a subfolder for each class (folder uploads arrive without their subfolders).")
        if options.kind in TEXT_KINDS and not (report.captioned or (options.instance_prompt or "").strip()):
            raise ValueError("Text to image and LoRA learn from captions, and these images have none: add a "
                             "metadata.jsonl or .txt captions to the upload, or type an instance prompt.")
        images = len(report.usable(options.resolution))
        config = training_config(options, images, self.settings.max_train_steps, pretrained)
        dataset = {"source": report.source, "images": images, "skipped": len(report.skipped),
                   "too_small": len(report.accepted) - images, "captioned": len(report.captioned),
                   "classes": report.class_names if options.class_conditional else None}
        with self._lock:
            job = self.store.add(name, QUEUED, asdict(config), dataset, visitor.name if visitor else None)
            folder = self.folder(job.id)
            try:
                folder.mkdir(parents=True)
                build_training_folder(upload, report, config.resolution, folder / DATASET_FOLDER)
                (folder / CONFIG_FILE).write_text(config.to_json())
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                self.store.delete(job.id)
                raise
        logger.info("job #%d (%s) queued: %d images, %s steps", job.id, name, images,
                    config.max_train_steps or f"{config.num_epochs} epochs of")
        return job

    def _free_name(self, name: str, job: Job | None = None) -> str:
        name = check_name(name)
        try:
            entry = self.studio.catalog.get(name)
        except UnknownModelError:
            return name
        if job is None or entry.source != str(self.pipeline_folder(job)):
            raise ValueError(f"A model named {name!r} exists already; choose another name.")
        return name

    # Acting on jobs.

    def cancel(self, job_id: int, visitor: Visitor | None = None) -> Job:
        """A queued job is cancelled at once; a running one saves a checkpoint and stops."""
        with self._lock:
            job = self.job(job_id, visitor)
            if job.status == QUEUED:
                return self.store.update(job_id, status=CANCELLED, ended_at=time.time(),
                                         message="Cancelled before it started.")
            if job.status != RUNNING:
                raise ValueError(f"Job #{job_id} is {job.status}; only queued or running jobs can be cancelled.")
            job = self.store.update(job_id, cancel_requested=job.cancel_requested or time.time())
            self.trainers.stop(job)
            return job

    def resume(self, job_id: int, visitor: Visitor | None = None) -> Job:
        """Queue an interrupted, cancelled or failed job again; it continues from its last checkpoint."""
        with self._lock:
            job = self.job(job_id, visitor)
            if job.status not in RESUMABLE:
                raise ValueError(f"Job #{job_id} is {job.status}; only {', '.join(RESUMABLE)} jobs can be resumed.")
            return self.store.update(job_id, status=QUEUED, queued_at=time.time(), ended_at=None,
                                     cancel_requested=None, message=None)

    def delete(self, job_id: int, visitor: Visitor | None = None) -> None:
        """Remove a job that is not running: its row, its folder, and its model from the catalog."""
        with self._lock:
            job = self.job(job_id, visitor)
            if job.status == RUNNING:
                raise ValueError(f"Job #{job_id} is running; cancel it before deleting it.")
            self._unregister(job)
            shutil.rmtree(self.folder(job_id), ignore_errors=True)
            self.store.delete(job_id)
        logger.info("job #%d (%s) deleted", job_id, job.name)

    def rename(self, job_id: int, name: str, visitor: Visitor | None = None) -> Job:
        """A new name for the job and for its model in every tab."""
        with self._lock:
            job = self.job(job_id, visitor)
            name = self._free_name(name, job)
            self._unregister(job)
            job = self.store.update(job_id, name=name)
            if job.status == FINISHED:
                self._register(job)
            return job

    def push_to_hub(self, job_id: int, repo_id: str, token: str, visitor: Visitor | None = None) -> str:
        """Upload a finished job's model to a hub repository; the token is used for this call only."""
        job = self.job(job_id, visitor)
        if job.status != FINISHED:
            raise ValueError(f"Job #{job_id} is {job.status}; only a finished job's model can be pushed.")
        url = push_folder(self.pipeline_folder(job), repo_id, token, offline=self.settings.offline,
                          commit_message=f"Upload {job.name}, trained with Diffusion Studio")
        logger.info("job #%d (%s) pushed to %s", job_id, job.name, url)
        return url

    def _register(self, job: Job) -> None:
        entry = entry_from_folder(self.pipeline_folder(job), job.name)
        if entry is None:
            logger.warning("job #%d finished without a loadable pipeline", job.id)
            return
        try:
            taken = self.studio.catalog.get(job.name).source != entry.source
        except UnknownModelError:
            taken = False
        if taken:
            logger.warning("job #%d's model is not listed: another model is named %r; rename the job", job.id, job.name)
            return
        self.studio.catalog.register(replace(entry, description=f"trained by job #{job.id}", owner=job.owner))

    def _unregister(self, job: Job) -> None:
        try:
            entry = self.studio.catalog.get(job.name)
        except UnknownModelError:
            return
        if entry.source == str(self.pipeline_folder(job)):
            self.studio.catalog.unregister(job.name)
            for cache in self.studio.caches:
                cache.unload(job.name)

    # Reading jobs.

    def jobs(self, visitor: Visitor | None = None) -> list[Job]:
        """Every job, or on a public server those the visitor may see."""
        return [job for job in self.store.all() if visitor is None or visitor.owns(job.owner)]

    def job(self, job_id: int, visitor: Visitor | None = None) -> Job:
        """A job; another visitor's job is, to this visitor, no job at all."""
        job = self.store.get(job_id)
        if visitor is not None and not visitor.owns(job.owner):
            raise UnknownJobError(f"There is no job #{job_id}.")
        return job

    def queue_position(self, job: Job) -> int | None:
        """1 for the next job to start; None when the job is not queued."""
        queued = [queued.id for queued in self.store.with_status(QUEUED)]
        return queued.index(job.id) + 1 if job.id in queued else None


def open_jobs(studio: Studio) -> JobManager | None:
    """The app's job manager, started; None when training is switched off."""
    if not studio.settings.training_enabled:
        return None
    return JobManager(studio).start()
