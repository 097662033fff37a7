"""A restarted app finds its Ray jobs again: on a Ray cluster started as an operator starts one (`ray start
--head`), a training job keeps running while the app that submitted it stops, and the next app, on the same data
dir, shows it running and can cancel it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from running_app import free_port, running_app
from test_ray import dashboard
from test_training_api import job_options, job_row

pytest.importorskip("ray")

RAY = [sys.executable, "-m", "ray.scripts.scripts"]
TIMEOUT = 300


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """The head's address; the cluster is stopped at the end (with every Ray process of this machine)."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    port = free_port()
    subprocess.run([*RAY, "start", "--head", "--port", str(port), "--num-cpus", "2", "--dashboard-port",
                    str(free_port()), "--disable-usage-stats"], check=True, env=env, capture_output=True)
    try:
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([*RAY, "stop", "--force"], env=env, capture_output=True)


def app_env(models_dir, data_dir, address: str, ray_env: dict) -> dict:
    return {**ray_env, "DS_MODELS_DIR": str(models_dir), "DS_DATA_DIR": str(data_dir), "DS_OFFLINE": "1",
            "GRADIO_ANALYTICS_ENABLED": "False", "DS_RAY_ADDRESS": address, "DS_RAY_CPUS_PER_REPLICA": "0.5"}


def test_a_restarted_app_finds_its_running_ray_job_and_can_cancel_it(ray_cluster, models_dir, tmp_path):
    address, ray_env = ray_cluster
    env = app_env(models_dir, tmp_path / "data", address, ray_env)
    rng = np.random.default_rng(0)
    paths = []
    for index in range(8):
        paths.append(tmp_path / f"{index}.png")
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(paths[-1])

    with running_app(env, tmp_path / "first.log", start_timeout=300) as url:
        client = Client(url, verbose=False)
        client.predict([handle_file(path) for path in paths], 16, api_name="/inspect_dataset")
        client.predict(*job_options("outlives", 100000), api_name="/start_job")
        deadline = time.monotonic() + TIMEOUT
        while job_row(client, "outlives")[3] in ("–", "0/100000") and time.monotonic() < deadline:
            time.sleep(0.5)
        assert job_row(client, "outlives")[2] == "running"
        ray_jobs_url = f"{dashboard(tmp_path / 'first.log')}/api/jobs/"

    def ray_status() -> list[str]:
        return [job["status"] for job in httpx.get(ray_jobs_url, timeout=30).json()
                if (job.get("metadata") or {}).get("name") == "outlives"]

    assert ray_status() == ["RUNNING"]  # the first app has stopped; its job has not
    with running_app(env, tmp_path / "second.log", start_timeout=300) as url:
        client = Client(url, verbose=False)
        row = job_row(client, "outlives")
        assert row[2] == "running"
        step = int(str(row[3]).split("/")[0])
        deadline = time.monotonic() + TIMEOUT
        while int(str(job_row(client, "outlives")[3]).split("/")[0]) <= step and time.monotonic() < deadline:
            time.sleep(0.5)
        assert int(str(job_row(client, "outlives")[3]).split("/")[0]) > step  # its progress still arrives
        client.predict(int(str(row[0]).lstrip("#")), api_name="/cancel_job")
        while job_row(client, "outlives")[2] in ("running", "cancelling") and time.monotonic() < deadline:
            time.sleep(1)
        assert job_row(client, "outlives")[2] == "cancelled"
    assert ray_status() == ["STOPPED"]
