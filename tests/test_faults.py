"""Injected faults: each failing request gets a clear error, frees what it held, and the next one succeeds."""

from __future__ import annotations

import shutil

import pytest
import torch
from gradio_client import Client
from gradio_client.exceptions import AppError

from diffusion_app.catalog import ModelEntry, UNCONDITIONAL
from diffusion_app.ui import build_app, common

from conftest import TINY_MODEL
from running_app import serving

REQUEST = (TINY_MODEL, 1, 3, 5, False)


@pytest.fixture
def live(studio, monkeypatch):
    """The app served in this process, so a test can break the pipelines it uses; plus a release counter."""
    releases = []
    monkeypatch.setattr(common, "release_memory", lambda: releases.append(1))
    with serving(build_app(studio)) as url:
        yield Client(url, verbose=False), releases


def generate(client, *args):
    return client.predict(*(args or REQUEST), api_name="/generate_unconditional")


def break_unet_once(studio, failure):
    """The next UNet call fails with `failure(x)`; later calls are normal."""
    unet = studio.pipeline(TINY_MODEL, UNCONDITIONAL).unet

    def forward(sample, *args, **kwargs):
        del unet.forward
        return failure(sample)

    unet.forward = forward


def test_out_of_memory_is_reported_memory_freed_and_next_request_served(live, studio):
    client, releases = live

    def out_of_memory(sample):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    break_unet_once(studio, out_of_memory)
    with pytest.raises(AppError, match="Out of memory while generating"):
        generate(client)
    assert releases == [1]
    gallery, _ = generate(client)
    assert len(gallery) == 1


def test_nan_output_is_reported_and_next_request_served(live, studio):
    client, _ = live
    break_unet_once(studio, lambda sample: type("Output", (), {"sample": torch.full_like(sample, float("nan"))}))
    with pytest.raises(AppError, match="NaN or infinite"):
        generate(client)
    gallery, _ = generate(client)
    assert len(gallery) == 1


@pytest.fixture
def broken_model(studio, models_dir, tmp_path):
    """A catalog entry whose weights file is corrupt (registered before the app builds its dropdowns)."""
    broken = tmp_path / "broken"
    shutil.copytree(models_dir / TINY_MODEL, broken)
    (broken / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"not a safetensors file")
    studio.catalog.register(ModelEntry("broken", str(broken), UNCONDITIONAL, "corrupt weights"))
    return "broken"


def test_model_that_fails_to_load_is_reported_and_others_still_work(broken_model, live, studio):
    client, _ = live
    with pytest.raises(AppError, match="'broken' could not be loaded"):
        generate(client, broken_model, 1, 3, 5, False)
    assert broken_model not in studio.cache
    gallery, _ = generate(client)
    assert len(gallery) == 1


def test_unexpected_failure_frees_memory_and_keeps_serving(live, studio):
    client, releases = live

    def crash(sample):
        raise RuntimeError("device lost")

    break_unet_once(studio, crash)
    with pytest.raises(AppError, match="Generation failed \\(RuntimeError\\): device lost"):
        generate(client)
    assert releases == [1]
    assert len(generate(client)[0]) == 1
