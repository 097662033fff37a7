"""Training jobs through the service: real `accelerate launch` trainers on tiny datasets, a few CPU steps each."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import time
from dataclasses import replace

import huggingface_hub
import numpy as np
import pytest
from PIL import Image

from diffusion_app.catalog import CLASS_CONDITIONAL, UNCONDITIONAL
from diffusion_app.service.jobs.options import JobOptions
from diffusion_app.service.jobs.process import group_members
from diffusion_app.service.jobs.progress import read_records
from diffusion_app.service.jobs.store import INTERRUPTED
from diffusion_app.service.jobs.manager import (
    CANCELLED,
    FINISHED,
    QUEUED,
    RUNNING,
    JobManager,
)
from diffusion_app.service.generation.sampling import SamplingRequest, sample
from diffusion_app.service.studio import Studio
from diffusion_app.service.jobs.trainers import trainer_process

TINY_JOB = JobOptions(name="tiny", model_size="tiny", resolution=16, steps=4, batch_size=4, learning_rate=1e-3,
                      sample_every=0, sample_steps=1, checkpoint_every=2)
JOB_TIMEOUT = 300
SECRET = "hf_secretTokenThatMustNeverBeStored"


def upload(manager: JobManager, tmp_path, classes: tuple[str, ...] = (), count: int = 8) -> str:
    """A tiny dataset of random 16x20 PNGs, flat or one subfolder per class, checked in as an upload."""
    rng = np.random.default_rng(0)
    files, names = [], []
    for index in range(count):
        path = tmp_path / "images" / f"{index}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (20, 16, 3), dtype=np.uint8)).save(path)
        files.append(path)
        names.append(f"{classes[index % len(classes)]}/{index}.png" if classes else f"{index}.png")
    upload_id, _ = manager.uploads.inspect(files, names)
    return upload_id


def wait_for(condition, message: str, timeout: float = JOB_TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.1)
    pytest.fail(f"timed out waiting until {message}")


def wait_for_status(manager: JobManager, job_id: int, status: str):
    job = wait_for(lambda: (job := manager.job(job_id)).status not in (QUEUED, RUNNING) and job,
                   f"job #{job_id} ended")
    assert job.status == status, f"{job.message}\n{manager.log_tail(job)}"
    return job


def records(manager: JobManager, job_id: int) -> list[dict]:
    return read_records(manager.folder(job_id) / "output" / "progress.jsonl")


def loss_steps(manager: JobManager, job_id: int) -> list[int]:
    return sorted(record["step"] for record in records(manager, job_id) if "loss" in record)


def start_steps(manager: JobManager, job_id: int) -> list[int]:
    return [record["step"] for record in records(manager, job_id) if record.get("event") == "started"]


@pytest.fixture
def manager(studio):
    jobs = JobManager(studio).start()
    yield jobs
    jobs.close()


def test_upload_to_model_end_to_end(manager, studio, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    job = manager.submit(upload(manager, tmp_path), replace(TINY_JOB, name="my model"))
    assert job.status == QUEUED and job.dataset["images"] == 8

    finished = wait_for_status(manager, job.id, FINISHED)
    progress = manager.progress(finished)
    assert progress.step == progress.total_steps == 4 and [step for step, _ in progress.losses] == [1, 2, 3, 4]
    assert progress.samples.is_file() and progress.images_per_s > 0
    assert "starting the trainer" in manager.log_tail(finished)
    database = sqlite3.connect(manager.store.path)
    assert database.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    database.close()

    entry = studio.catalog.get("my model")  # listed without a restart, and the Unconditional tab's call uses it
    assert entry.kind == UNCONDITIONAL and entry.source == str(manager.pipeline_folder(finished))
    images, _ = sample(studio, SamplingRequest("my model", steps=2, seed=0))
    assert images[0].size == (16, 16)

    manager.rename(job.id, "renamed model")
    assert "my model" not in studio.catalog.names() and "renamed model" in studio.catalog.names(UNCONDITIONAL)
    assert "my model" not in studio.cache
    assert sample(studio, SamplingRequest("renamed model", steps=1, seed=0))[0]

    calls = []
    monkeypatch.setattr(huggingface_hub, "create_repo", lambda repo_id, token, exist_ok: calls.append((repo_id, token)))
    monkeypatch.setattr(huggingface_hub, "upload_folder", lambda **kwargs: calls.append(
        (kwargs["repo_id"], kwargs["token"], kwargs["folder_path"])))
    with pytest.raises(ValueError, match="runs offline"):
        manager.push_to_hub(job.id, "me/renamed", SECRET)
    online = JobManager(Studio(replace(studio.settings, offline=False), catalog=studio.catalog))
    assert online.push_to_hub(job.id, "me/renamed", SECRET) == "https://huggingface.co/me/renamed"
    assert calls == [("me/renamed", SECRET), ("me/renamed", SECRET, manager.pipeline_folder(finished))]
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", "http://127.0.0.1:9/mirror")
    assert online.push_to_hub(job.id, "me/renamed", SECRET) == "http://127.0.0.1:9/mirror/me/renamed"
    stored = b"".join(path.read_bytes() for path in studio.settings.data_dir.rglob("*") if path.is_file())
    assert SECRET.encode() not in stored and SECRET not in caplog.text

    manager.delete(job.id)
    assert not manager.folder(job.id).exists() and "renamed model" not in studio.catalog.names()
    with pytest.raises(ValueError, match=f"There is no job #{job.id}"):
        manager.job(job.id)


def test_cancel_then_resume_continues_from_the_checkpoint(manager, tmp_path):
    job = manager.submit(upload(manager, tmp_path), replace(TINY_JOB, name="long", steps=16, checkpoint_every=1000))
    wait_for(lambda: manager.progress(manager.job(job.id)).step >= 3, "three steps were trained")
    running = manager.job(job.id)
    manager.cancel(job.id)

    cancelled = wait_for_status(manager, job.id, CANCELLED)
    step = manager.checkpoint_step(cancelled)
    assert step is not None and 3 <= step < 16, "the stop came too late to test resuming"
    assert cancelled.message == f"Cancelled at step {step}; resume continues from its checkpoint at step {step}."
    assert not group_members(trainer_process(running))  # the whole process tree is gone

    manager.resume(job.id)
    assert manager.job(job.id).status in (QUEUED, RUNNING)
    wait_for_status(manager, job.id, FINISHED)
    assert start_steps(manager, job.id) == [0, step]
    assert loss_steps(manager, job.id) == list(range(1, 17))  # every step once: no gap, no repeat


def test_kill_9_then_a_restart_marks_the_job_interrupted_and_resume_finishes_it(studio, tmp_path):
    first = JobManager(studio).start()
    job = first.submit(upload(first, tmp_path), replace(TINY_JOB, name="killed", steps=12, checkpoint_every=4))
    wait_for(lambda: any(step > 4 for step in loss_steps(first, job.id)), "the trainer went past its first checkpoint")
    running = first.job(job.id)
    first.close(stop_jobs=False)  # the server goes down without a word ...
    os.killpg(running.pid, signal.SIGKILL)  # ... and so does the trainer
    wait_for(lambda: not group_members(trainer_process(running)), "the trainer's processes were gone", 30)

    second = JobManager(studio).start()  # the server starts again
    try:
        interrupted = second.job(job.id)
        step = second.checkpoint_step(interrupted)
        assert interrupted.status == INTERRUPTED and step is not None and step % 4 == 0
        assert f"resume continues from its checkpoint at step {step}" in interrupted.message
        second.resume(job.id)
        wait_for_status(second, job.id, FINISHED)
        assert start_steps(second, job.id) == [0, step]
        assert loss_steps(second, job.id) == list(range(1, 13))
    finally:
        second.close()


def test_a_restart_keeps_the_queue_and_watches_a_trainer_still_running(studio, tmp_path):
    first = JobManager(studio).start()
    pets = upload(first, tmp_path, classes=("cat", "dog"))
    job = first.submit(pets, replace(TINY_JOB, name="pets", class_conditional=True, steps=6))
    waiting = first.submit(pets, replace(TINY_JOB, name="waiting", steps=200))
    wait_for(lambda: first.job(job.id).status == RUNNING, "the first job started")
    assert first.job(waiting.id).status == QUEUED  # one job at a time by default
    first.close(stop_jobs=False)

    second = JobManager(studio).start()
    try:
        assert second.job(job.id).status == RUNNING and second.job(waiting.id).status == QUEUED
        wait_for_status(second, job.id, FINISHED)
        entry = studio.catalog.get("pets")
        assert entry.kind == CLASS_CONDITIONAL and entry.class_names == ("cat", "dog")
        images, _ = sample(studio, SamplingRequest("pets", steps=1, seed=0, classes=(1,)))
        assert len(images) == 1

        wait_for(lambda: second.job(waiting.id).status == RUNNING, "the queued job started")
        second.cancel(waiting.id)
        assert wait_for_status(second, waiting.id, CANCELLED).message.startswith("Cancelled at step")
    finally:
        second.close()


@pytest.mark.parametrize("changes, message", [
    ({"name": ""}, "A job name must have 1 to 64 characters"),
    ({"name": "a/b"}, "may not contain slashes"),
    ({"name": "tiny-ddpm"}, "A model named 'tiny-ddpm' exists already"),
    ({"class_conditional": True}, "Class-conditional training needs one subfolder per class"),
    ({"resolution": 64}, "No image is at least 64x64"),
    ({"resolution": 18, "model_size": "small"}, "resolution 18 cannot be halved evenly"),
    ({"steps": 200_000}, "Steps must be a whole number from 1 to 100000"),
    ({"steps": None, "epochs": 100_000, "batch_size": 1}, "are 800,000 steps; this server allows at most 100,000"),
    ({"batch_size": 0}, "Batch size must be a whole number from 1 to 256"),
    ({"learning_rate": -1.0}, "Learning rate must be above 0"),
    ({"mixed_precision": "fp8"}, "Mixed precision must be one of no, fp16, bf16"),
    ({"base_model": "tiny-digits"}, "is class-conditional; this kind of job starts from an unconditional model"),
    ({"base_model": "google/ddpm-cat-256"}, "is not on this machine and the server runs offline"),
    ({"base_model": "nope"}, "Unknown model 'nope'"),
])
def test_bad_job_requests_are_refused_and_leave_nothing(studio, tmp_path, changes, message):
    manager = JobManager(studio)  # not started: nothing is launched
    upload_id = upload(manager, tmp_path)
    with pytest.raises(ValueError, match=message):
        manager.submit(upload_id, replace(TINY_JOB, **changes))
    assert manager.jobs() == [] and not any(manager.jobs_dir.glob("[0-9]*"))


def test_queued_jobs_cancel_resume_rename_and_delete_without_running(studio, tmp_path):
    manager = JobManager(studio)
    upload_id = upload(manager, tmp_path)
    with pytest.raises(ValueError, match="Upload a folder of images or a .zip first"):
        manager.submit("../../etc", TINY_JOB)
    first = manager.submit(upload_id, replace(TINY_JOB, name="first", base_model="tiny-gray"))
    assert (first.config["resolution"], first.config["channels"]) == (8, 1)  # the base model's
    assert first.config["pretrained_model"] == str(studio.settings.models_dir / "tiny-gray")
    second = manager.submit(upload_id, replace(TINY_JOB, name="second"))
    with pytest.raises(ValueError, match="A job named 'second' exists already"):
        manager.submit(upload_id, replace(TINY_JOB, name="second"))
    with pytest.raises(ValueError, match="A job named 'first' exists already"):
        manager.rename(second.id, "first")

    restarted = JobManager(studio)  # what a restart sees: the queue, in order
    assert [(job.name, job.status) for job in restarted.jobs()] == [("first", QUEUED), ("second", QUEUED)]
    assert [restarted.queue_position(job) for job in restarted.jobs()] == [1, 2]

    assert manager.cancel(first.id).message == "Cancelled before it started."
    with pytest.raises(ValueError, match="is cancelled; only queued or running jobs can be cancelled"):
        manager.cancel(first.id)
    with pytest.raises(ValueError, match="is queued; only interrupted, cancelled, failed jobs can be resumed"):
        manager.resume(second.id)
    resumed = manager.resume(first.id)
    assert resumed.status == QUEUED and manager.queue_position(resumed) == 2  # at the end of the queue
    assert manager.rename(second.id, " ünïcode name ").name == "ünïcode name"
    manager.delete(second.id)
    assert [job.name for job in manager.jobs()] == ["first"] and not manager.folder(second.id).exists()


def test_push_refuses_unfinished_jobs_and_bad_repositories(studio, tmp_path):
    manager = JobManager(Studio(replace(studio.settings, offline=False)))
    job = manager.submit(upload(manager, tmp_path), TINY_JOB)
    with pytest.raises(ValueError, match="is queued; only a finished job's model can be pushed"):
        manager.push_to_hub(job.id, "me/model", SECRET)
    manager.store.update(job.id, status=FINISHED)
    with pytest.raises(ValueError, match="must look like user/name"):
        manager.push_to_hub(job.id, "no slash", SECRET)
    with pytest.raises(ValueError, match="Type a Hugging Face access token"):
        manager.push_to_hub(job.id, "me/model", "  ")
