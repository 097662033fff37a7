"""The Ray backend end to end: `python app.py` on a local Ray instance (CPU only, two generation replicas),
used through its API as a visitor would. Generation runs in the Ray Serve replicas and gives the local backend's
images; Stop cancels only its own run; a training job runs as a Ray job to a model every tab lists."""

from __future__ import annotations

import os
import re
import time
from dataclasses import replace

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.client import Status
from gradio_client.exceptions import AppError
from PIL import Image

from diffusion_app.hardware import default_dtype
from diffusion_app.service.generation.sampling import SamplingRequest, sample
from diffusion_app.service.studio import Studio
from conftest import TINY_MODEL, wait_for_first_output
from running_app import running_app
from test_training_api import job_options, job_row

pytest.importorskip("ray")  # an optional install (requirements-ray.txt); CI installs it

JOB_TIMEOUT = 300


@pytest.fixture(scope="module")
def ray_app(models_dir, tiny_clip, tmp_path_factory):
    """The app's URL, log file and data dir, the app started with DS_RAY_ADDRESS=local (it starts a Ray instance inside)."""
    log = tmp_path_factory.mktemp("ray-logs") / "app.log"
    data_dir = tmp_path_factory.mktemp("data")
    env = {**os.environ, "DS_MODELS_DIR": str(models_dir), "DS_DATA_DIR": str(data_dir),
           "DS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False", "DS_CLIP_CONFIGS": str(tiny_clip[0]),
           "DS_RAY_ADDRESS": "local", "DS_RAY_MIN_REPLICAS": "2", "DS_RAY_CPUS_PER_REPLICA": "0.5",
           "RAY_AUTH_MODE": "disabled", "RAY_DEDUP_LOGS": "0"}  # a throwaway instance: its dashboard API answers the test without a token
    try:
        with running_app(env, log, start_timeout=300) as url:
            yield url, log, data_dir
    except RuntimeError as error:
        pytest.fail(str(error))


def dashboard(log) -> str:
    found = re.search(r"its dashboard: (\S+)", log.read_text())
    assert found, "the app did not say where the Ray dashboard is"
    return found.group(1) if "://" in found.group(1) else f"http://{found.group(1)}"


def replicas_that_served(log, expected: int = 2, timeout: float = 30) -> set[str]:
    """The pids of the replicas whose request log (forwarded to the app's output, a little later) shows a run."""
    deadline = time.monotonic() + timeout
    while True:
        pids = set(re.findall(r"ServeReplica:diffusion-studio:generation pid=(\d+).*CALL run OK", log.read_text()))
        if len(pids) >= expected or time.monotonic() > deadline:
            return pids
        time.sleep(0.5)


def images(gallery) -> np.ndarray:
    return np.stack([np.asarray(Image.open(item["image"])) for item in gallery])


def pixels(pil_images) -> np.ndarray:
    return np.stack([np.asarray(image) for image in pil_images])


REQUESTS = [(TINY_MODEL, 2, 12, 3), ("tiny-gray", 1, 12, 4), (TINY_MODEL, 3, 8, 5)]


def test_generation_runs_on_the_replicas_and_gives_the_local_backends_images(ray_app, settings):
    url, log, _ = ray_app
    studio = Studio(replace(settings, dtype=default_dtype("cpu")))  # the local backend as the app sets it up
    client = Client(url, verbose=False)
    alone = [images(client.predict(*args, False, api_name="/generate_unconditional")[0]) for args in REQUESTS]
    submitted = [Client(url, verbose=False).submit(*args, False, api_name="/generate_unconditional")
                 for args in REQUESTS]
    together = [images(job.result(timeout=120)[0]) for job in submitted]
    for (model, count, steps, seed), first, concurrent in zip(REQUESTS, alone, together):
        local, _ = sample(studio, SamplingRequest(model, num_images=count, steps=steps, seed=seed))
        assert np.array_equal(first, concurrent) and np.array_equal(first, pixels(local))

    applications = httpx.get(f"{dashboard(log)}/api/serve/applications/", timeout=30).json()["applications"]
    replicas = applications["diffusion-studio"]["deployments"]["generation"]["replicas"]
    assert [replica["state"] for replica in replicas] == ["RUNNING", "RUNNING"]
    assert len(replicas_that_served(log)) == 2, "the concurrent runs did not spread over both replicas"
    assert "Ray Serve replicas" in client.predict(api_name="/list_models")[1]  # the Models tab says where they are


def test_stop_cancels_only_its_own_run_on_the_replicas(ray_app):
    url, _, _ = ray_app
    stopper, other = Client(url, verbose=False), Client(url, verbose=False)
    # The stopped run is the longer one: were it not cancelled, its replica would come free after the kept run's.
    stopped = stopper.submit(TINY_MODEL, 8, 1000, 0, False, api_name="/generate_unconditional")
    outputs = wait_for_first_output(stopped)
    assert outputs and outputs[-1][1].startswith("Step "), "no step came back from the replica"
    kept = other.submit(TINY_MODEL, 8, 600, 9, False, api_name="/generate_unconditional")
    wait_for_first_output(kept)  # both replicas are busy now
    stopped.cancel()
    # The stopped run's replica is free again at its next step: a third run is served while the kept one runs.
    third = Client(url, verbose=False).predict(TINY_MODEL, 1, 2, 1, False, api_name="/generate_unconditional")
    assert len(third[0]) == 1 and not kept.done()
    gallery, report = kept.result(timeout=300)
    assert stopped.status().code == Status.CANCELLED
    assert len(gallery) == 8 and "Seed 9" in report and "600 DDPM steps" in report


def test_a_training_job_runs_as_a_ray_job_to_a_model_the_replicas_serve(ray_app, tmp_path):
    url, log, data_dir = ray_app
    client = Client(url, verbose=False)
    rng = np.random.default_rng(0)
    paths = []
    for index in range(8):
        paths.append(tmp_path / f"{index}.png")
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(paths[-1])
    client.predict([handle_file(path) for path in paths], 16, api_name="/inspect_dataset")
    message, _ = client.predict(*job_options("ray-model", 20), api_name="/start_job")
    assert message.startswith("Job #")

    deadline = time.monotonic() + JOB_TIMEOUT
    while job_row(client, "ray-model")[2].split()[0] in ("queued", "running") and time.monotonic() < deadline:
        time.sleep(1)
    assert job_row(client, "ray-model")[2] == "finished"
    ray_jobs = httpx.get(f"{dashboard(log)}/api/jobs/", timeout=30).json()
    ours = [job for job in ray_jobs if (job.get("metadata") or {}).get("name") == "ray-model"]
    assert [job["status"] for job in ours] == ["SUCCEEDED"]
    assert "diffusion_app.training.train" in ours[0]["entrypoint"]

    choices = client.predict(api_name="/refresh_models")[0]["choices"]
    assert ["ray-model", "ray-model"] in choices
    gallery, report = client.predict("ray-model", 2, 3, 5, False, api_name="/generate_unconditional")
    assert len(gallery) == 2 and "Seed 5" in report

    # Cancel stops the Ray job; the trainer saves a checkpoint on its way out, so the job can resume.
    client.predict(*job_options("ray-cancelled", 100000), api_name="/start_job")
    while job_row(client, "ray-cancelled")[3] in ("–", "0/100000") and time.monotonic() < deadline:
        time.sleep(0.5)
    row = job_row(client, "ray-cancelled")
    assert row[2] == "running"
    job_id = int(str(row[0]).lstrip("#"))
    client.predict(job_id, api_name="/cancel_job")
    while job_row(client, "ray-cancelled")[2] in ("running", "cancelling") and time.monotonic() < deadline:
        time.sleep(1)
    assert job_row(client, "ray-cancelled")[2] == "cancelled"
    assert list((data_dir / "jobs" / str(job_id) / "output").glob("checkpoint-*"))
    ray_jobs = httpx.get(f"{dashboard(log)}/api/jobs/", timeout=30).json()
    assert [job["status"] for job in ray_jobs if (job.get("metadata") or {}).get("name") == "ray-cancelled"] == [
        "STOPPED"]


def test_bad_input_gets_the_replicas_message_and_the_app_keeps_serving(ray_app):
    url, _, _ = ray_app
    client = Client(url, verbose=False)
    # Refused by the run the replica makes; the visitor reads its message, not Ray's wrapper with a traceback.
    with pytest.raises(AppError, match=r"^Guiding every 1 steps from 0.6 to 0.9 of 2 steps guides none of them; "):
        client.predict(TINY_MODEL, "#ff0000", 10, "fast", 1, 2, "DDIM", False, 1, 0.6, 0.9, 0, False,
                       api_name="/generate_colour_guidance")
    gallery, _ = client.predict(TINY_MODEL, 1, 2, 0, False, api_name="/generate_unconditional")
    assert len(gallery) == 1
