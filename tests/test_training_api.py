"""The Training tab through gradio_client: the running app, as an API user or a script would use it."""

from __future__ import annotations

import contextlib
import time
import zipfile
from dataclasses import replace

import gradio as gr
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from diffusion_app.service.jobs.manager import JobManager
from diffusion_app.ui import build_app
from diffusion_app.ui.visitor import OPEN
from running_app import serving

JOB_TIMEOUT = 300


@pytest.fixture(scope="module")
def client(server_url):
    return Client(server_url, verbose=False)


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("upload")
    rng = np.random.default_rng(0)
    paths = []
    for index in range(8):
        paths.append(folder / f"{index}.png")
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(paths[-1])
    return paths


def job_options(name: str, steps: int) -> tuple:
    """/start_job's arguments: name, start, base model, size, resolution, grayscale, class-conditional,
    unit, length, batch size, learning rate, mixed precision, EMA, sample every, grid steps, checkpoint every."""
    return (name, "From scratch", "tiny-ddpm", "tiny", 16, False, False, "steps", steps, 4, 1e-3, "no", True, 0, 1,
            1000)


def job_row(client: Client, name: str) -> list:
    table = client.predict(None, api_name="/refresh_jobs")[0]
    return next(row for row in table["data"] if row[1] == name)


def test_bad_uploads_get_a_message_and_the_server_keeps_serving(client, images, tmp_path):
    archive = tmp_path / "slip.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.write(images[0], "cats/1.png")
        zipped.write(images[1], "../../outside.png")
    with pytest.raises(AppError, match="holds a path that leads outside its folder"):
        client.predict([handle_file(archive)], 16, api_name="/inspect_dataset")
    (tmp_path / "notes.txt").write_text("no images here")
    with pytest.raises(AppError, match="No images in the upload"):
        client.predict([handle_file(tmp_path / "notes.txt")], 16, api_name="/inspect_dataset")
    with pytest.raises(AppError, match="Upload a folder of images or a .zip first"):
        client.predict(*job_options("no-data", 4), api_name="/start_job")
    gallery, _ = client.predict("tiny-ddpm", 1, 2, 0, False, api_name="/generate_unconditional")
    assert len(gallery) == 1


def test_train_while_generating_then_generate_from_the_new_model(client, images):
    report, preview, name, class_conditional, grayscale = client.predict(
        [handle_file(path) for path in images], 16, api_name="/inspect_dataset")
    assert "**8 image(s) accepted**" in report and "At 16x16: **8 usable**" in report
    assert Image.open(preview).size == (8 * 48 + 7 * 2, 48)
    message, _ = client.predict(*job_options("api-model", 60), api_name="/start_job")
    assert message.startswith("Job #") and "api\\-model" in message

    deadline = time.monotonic() + JOB_TIMEOUT
    while job_row(client, "api-model")[3] in ("–", "0/60") and time.monotonic() < deadline:
        time.sleep(0.5)
    assert job_row(client, "api-model")[2] == "running"
    gallery, report = client.predict("tiny-ddpm", 1, 4, 0, False, api_name="/generate_unconditional")
    assert len(gallery) == 1 and "4 DDPM steps" in report
    assert job_row(client, "api-model")[2] == "running", "the job ended before the generation request did"

    while job_row(client, "api-model")[2] == "running" and time.monotonic() < deadline:
        time.sleep(1)
    assert job_row(client, "api-model")[2] == "finished"
    viewer = Client(client.src, verbose=False)  # a new session gets the whole panel (others get what changed)
    _, _, status, losses, samples, _ = viewer.predict(None, api_name="/refresh_jobs")
    assert "step 60/60" in status and len(losses["data"]) >= 6 and Image.open(samples).size[0] > 16

    choices = client.predict(api_name="/refresh_models")[0]["choices"]  # this session now lists the new model
    assert ["api-model", "api-model"] in choices
    gallery, report = client.predict("api-model", 2, 3, 5, False, api_name="/generate_unconditional")
    assert len(gallery) == 2 and "Seed 5" in report


@pytest.fixture
def local_app(studio):
    """The app in this process, on its own port, built from the given studio."""
    with contextlib.ExitStack() as served:
        def launch(settings_changes: dict) -> tuple[Client, JobManager | None]:
            studio.settings = replace(studio.settings, **settings_changes)
            jobs = JobManager(studio) if studio.settings.training_enabled else None
            url = served.enter_context(serving(build_app(studio, jobs)))
            return Client(url, verbose=False), jobs

        yield launch


def test_training_tab_login(local_app, images):
    client, _ = local_app({"training_auth": (("ada", "s3cret:pass"),)})
    with pytest.raises(AppError, match="Log in to use training"):
        client.predict([handle_file(images[0])], 16, api_name="/inspect_dataset")
    with pytest.raises(AppError, match="Log in to use training"):
        client.predict(*job_options("sneaky", 4), api_name="/start_job")
    with pytest.raises(AppError, match="Wrong user name or password"):
        client.predict("ada", "wrong", api_name="/training_login")
    gallery, _ = client.predict("tiny-ddpm", 1, 2, 0, False, api_name="/generate_unconditional")  # public
    assert len(gallery) == 1

    client.predict("ada", "s3cret:pass", api_name="/training_login")
    report = client.predict([handle_file(path) for path in images], 16, api_name="/inspect_dataset")[0]
    assert "8 image(s) accepted" in report
    other_session = Client(client.src, verbose=False)
    with pytest.raises(AppError, match="Log in to use training"):
        other_session.predict(*job_options("sneaky", 4), api_name="/start_job")


def test_training_switched_off(local_app):
    client, jobs = local_app({"training_enabled": False})
    assert jobs is None
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert "/generate_unconditional" in endpoints and "/start_job" not in endpoints


def test_a_refresh_that_read_the_old_selection_does_not_undo_a_new_jobs_selection(studio, tmp_path):
    """Starting a job selects it; a timer tick that read the selection just before must not select the job
    before it again (the panel would then follow the wrong job)."""
    from test_jobs import TINY_JOB, upload

    jobs = JobManager(studio)  # not started: the jobs stay queued
    upload_id = upload(jobs, tmp_path)
    first = jobs.submit(upload_id, replace(TINY_JOB, name="first"))
    app = build_app(studio, jobs)
    refresh = next(fn.fn for fn in app.fns.values() if getattr(fn.fn, "__name__", "") == "refresh")
    shown = [(f"#{first.id} first", first.id)]

    update = refresh(OPEN, None, None, None)[1]  # a new page selects the newest job
    assert update.constructor_args == {"choices": shown, "value": first.id}
    assert refresh(OPEN, first.id, shown, None)[1] == gr.skip()  # nothing changed: nothing sent
    second = jobs.submit(upload_id, replace(TINY_JOB, name="second"))
    update = refresh(OPEN, first.id, shown, None)[1]  # the tick read #1; the start handler selected #2 meanwhile
    assert update.constructor_args == {"choices": [(f"#{second.id} second", second.id)] + shown}
