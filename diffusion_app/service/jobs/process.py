"""Trainer processes: `accelerate launch` in a process group of its own, watched and stopped as a group.

The group leader is accelerate's launcher; the trainer runs as its child. Stopping sends SIGTERM to
the trainer, which saves a checkpoint and exits 0, and the launcher then exits with it. Killing
sends SIGKILL to the whole group. A process is identified by its pid and start time, so that after
a server restart a pid the system has given to another program is never taken for a trainer.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import psutil

from ...hardware import trainer_threads
from ...settings import REPO_ROOT

TRAINER_MODULE = "diffusion_app.training.train"
NICENESS = 10  # the server's requests come first on a shared CPU
START_TIME_TOLERANCE = 1.0


@dataclass(frozen=True)
class TrainerProcess:
    pid: int  # the launcher's pid, which is also the process group id
    created: float  # the launcher's start time (psutil create_time)


def trainer_command(config_file: Path, mixed_precision: str, cpu: bool) -> list[str]:
    """`accelerate launch -m diffusion_app.training.train --config FILE`, with the same Python, niced."""
    command = [sys.executable, "-m", "accelerate.commands.launch", "--num_machines", "1",
               "--mixed_precision", mixed_precision, "--dynamo_backend", "no"]
    if cpu:
        command += ["--cpu", "--num_processes", "1", "--num_cpu_threads_per_process", str(trainer_threads())]
    command += ["-m", TRAINER_MODULE, "--config", str(config_file)]
    nice = shutil.which("nice")
    return [nice, "-n", str(NICENESS), *command] if nice else command


def trainer_environment(offline: bool) -> dict[str, str]:
    """The server's environment, with unbuffered output (the log updates live) and this project importable."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    if offline:
        env["HF_HUB_OFFLINE"] = "1"
    return env


def start_trainer(command: list[str], log_file: Path, cwd: Path, env: dict[str, str]
                  ) -> tuple[subprocess.Popen, TrainerProcess]:
    """Start the command in a new session (its own process group), its output appended to log_file."""
    with log_file.open("ab") as log:
        child = subprocess.Popen(command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
    try:
        created = psutil.Process(child.pid).create_time()
    except psutil.NoSuchProcess:  # it ended at once; the group is empty
        created = 0.0
    return child, TrainerProcess(child.pid, created)


def group_members(process: TrainerProcess) -> list[psutil.Process]:
    """The live (not zombie) processes of the trainer's group; empty once it has ended."""
    if process.pid <= 0:
        return []
    try:
        leader = psutil.Process(process.pid)
        if abs(leader.create_time() - process.created) > START_TIME_TOLERANCE:
            return []  # the pid now belongs to another program, so the old group is gone
    except psutil.NoSuchProcess:
        pass
    members = []
    for candidate in psutil.process_iter():
        try:
            if os.getpgid(candidate.pid) == process.pid and candidate.status() != psutil.STATUS_ZOMBIE:
                members.append(candidate)
        except (ProcessLookupError, psutil.NoSuchProcess, PermissionError, psutil.AccessDenied):
            continue
    return members


def is_running(process: TrainerProcess) -> bool:
    return bool(group_members(process))


def request_stop(process: TrainerProcess) -> None:
    """SIGTERM to the trainer (the launcher's descendants), or to the launcher before it has any."""
    members = group_members(process)
    trainers = [member for member in members if member.pid != process.pid] or members
    for member in trainers:
        try:
            member.send_signal(signal.SIGTERM)
        except psutil.NoSuchProcess:
            continue


def kill(process: TrainerProcess) -> None:
    """SIGKILL to every process of the group."""
    if group_members(process):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
