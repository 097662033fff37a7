"""Where the trainers of training jobs run: process groups on this machine, or Ray jobs on a cluster.

Both take the same `accelerate launch` command and answer the same questions about a job (is its trainer
running, stop it, kill it, how did it exit), so the job queue (jobs.py) is the same on either. What finds a
trainer again after a server restart is stored in the job's row: the process group's pid and start time, or
the Ray job's submission id.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import uuid
from pathlib import Path

from ...settings import REPO_ROOT, Settings
from .process import TrainerProcess, is_running, kill, request_stop, start_trainer, trainer_environment
from .store import Job


class LocalTrainers:
    """Trainers as process groups of this machine (job_process.py), stopped with the server (they checkpoint)."""

    outlive_the_server = False

    def __init__(self, settings: Settings):
        self.cpu = settings.training_device == "cpu"
        self.offline = settings.offline
        self._children: dict[int, subprocess.Popen] = {}  # job id -> the launchers this server started

    def launch(self, job: Job, command: list[str], log_file: Path, cwd: Path) -> dict:
        """Start the trainer; the job's fields that find it again. OSError when it cannot start."""
        child, process = start_trainer(command, log_file, cwd, trainer_environment(self.offline))
        self._children[job.id] = child
        return {"pid": process.pid, "pid_created": process.created}

    def is_running(self, job: Job) -> bool:
        child = self._children.get(job.id)
        if child is not None:
            child.poll()  # reaps an exited launcher
        return is_running(trainer_process(job))

    def stop(self, job: Job) -> None:
        request_stop(trainer_process(job))

    def kill(self, job: Job) -> None:
        kill(trainer_process(job))

    def exit_code(self, job: Job) -> int | None:
        """How the ended trainer exited; None when this server did not start it (a server restart)."""
        child = self._children.pop(job.id, None)
        return child.poll() if child is not None else None


def trainer_process(job: Job) -> TrainerProcess:
    return TrainerProcess(job.pid or 0, job.pid_created or 0.0)


class RayTrainers:
    """Trainers as Ray jobs: the same command, run by Ray on a node with the GPUs the job asks for, its output
    appended to the job's log (the data dir is a filesystem every node shares). Ray jobs outlive the server:
    a restarted server finds them by their submission id."""

    outlive_the_server = True

    def __init__(self, settings: Settings, grace_seconds: float):
        from ray.job_submission import JobSubmissionClient

        from ..scale.ray_cluster import connect, dashboard_url, gpus_to_ask

        connect(settings.ray)
        self.client = JobSubmissionClient(dashboard_url())
        self.gpus = gpus_to_ask(settings.ray.job_gpus)
        self.cpu = self.gpus == 0
        self.offline = settings.offline
        self.grace_seconds = grace_seconds

    def launch(self, job: Job, command: list[str], log_file: Path, cwd: Path) -> dict:
        submission_id = f"diffusion-studio-job-{job.id}-{uuid.uuid4().hex[:8]}"
        entrypoint = f"cd {shlex.quote(str(cwd))} && exec {shlex.join(command)} >> {shlex.quote(str(log_file))} 2>&1"
        try:
            self.client.submit_job(entrypoint=entrypoint, submission_id=submission_id,
                                   runtime_env={"env_vars": self.environment()}, entrypoint_num_gpus=self.gpus,
                                   entrypoint_num_cpus=1, metadata={"job": str(job.id), "name": job.name})
        except RuntimeError as err:  # the client's error for a refused submission
            raise OSError(f"Ray refused the job: {err}") from err
        return {"ray_job_id": submission_id}

    def environment(self) -> dict[str, str]:
        """The trainer's variables on the node: unbuffered output, this project importable, the hub settings, and
        time for the trainer to checkpoint when stopped (Ray's default is 3 s before SIGKILL)."""
        env = {name: value for name, value in os.environ.items() if name.startswith("HF_")}
        env.update(PYTHONUNBUFFERED="1", PYTHONPATH=str(REPO_ROOT),
                   RAY_JOB_STOP_WAIT_TIME_S=str(int(self.grace_seconds)))
        if self.offline:
            env["HF_HUB_OFFLINE"] = "1"
        return env

    def status(self, job: Job):
        from ray.job_submission import JobStatus

        if not job.ray_job_id:
            return JobStatus.STOPPED
        try:
            return self.client.get_job_status(job.ray_job_id)
        except RuntimeError:  # Ray no longer knows the job (a new cluster): it is not running
            return JobStatus.STOPPED

    def is_running(self, job: Job) -> bool:
        return not self.status(job).is_terminal()

    def stop(self, job: Job) -> None:
        """SIGTERM to the trainer: it checkpoints and exits (after grace_seconds Ray kills it)."""
        self.client.stop_job(job.ray_job_id)

    def kill(self, job: Job) -> None:
        """Ray kills a stopped job itself once grace_seconds have passed; this asks it to stop, in case it was not."""
        self.client.stop_job(job.ray_job_id)

    def exit_code(self, job: Job) -> int | None:
        if not job.ray_job_id:
            return None
        try:
            return self.client.get_job_info(job.ray_job_id).driver_exit_code
        except RuntimeError:
            return None
