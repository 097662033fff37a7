"""The history: every generated image kept with its parameters, found again, sent back to its tab to make it
again pixel for pixel, surviving a restart; on a public server each browser sees its own."""

from __future__ import annotations

import os

import numpy as np
import pytest
from gradio_client import Client
from PIL import Image

from diffusion_app.core.metadata import with_parameters
from diffusion_app.service.history import History
from conftest import TINY_MODEL
from running_app import running_app

UNCONDITIONAL_INPUTS = 5  # the Unconditional tab's controls, the first outputs of /history_send


def picture(value: int, parameters: str) -> Image.Image:
    return with_parameters(Image.new("RGB", (8, 8), (value, value, value)), parameters)


def test_the_history_keeps_searches_deletes_and_prunes(tmp_path):
    history = History(tmp_path / "history", max_bytes=10**9)
    ids = history.add("text2img", "tiny-sd", "a red apple", ["tiny-sd", "a red apple"],
                      [picture(10, "a red apple\nSeed: 5"), picture(20, "a red apple\nSeed: 6")], owner="browser-a")
    history.add("unconditional", "openmoji", "", ["openmoji", 1], [picture(30, "Seed: 9")], owner="browser-b")
    assert [image.id for image in history.search("browser-a")] == ids
    assert [image.position for image in history.search("browser-a")] == [0, 1]
    assert len(history.search()) == 3 and len(history.search(text="red apple")) == 2
    assert [image.model for image in history.search(tab="unconditional")] == ["openmoji"]
    with pytest.raises(ValueError, match="not in your history"):
        history.get(ids[0], owner="browser-b")
    reopened = History(tmp_path / "history", max_bytes=10**9)  # another process, a restart
    assert reopened.get(ids[1]).inputs == ["tiny-sd", "a red apple"]
    assert Image.open(reopened.file(ids[1])).info["parameters"] == "a red apple\nSeed: 6"
    reopened.delete(ids[0], owner="browser-a")
    assert not reopened.file(ids[0]).exists() and len(reopened.search()) == 2
    small = History(tmp_path / "history", max_bytes=reopened.total_bytes() - 1)
    assert small.prune() >= 1 and small.total_bytes() <= small.max_bytes


@pytest.fixture(scope="module")
def app_env(models_dir, tmp_path_factory):
    return {**os.environ, "DS_MODELS_DIR": str(models_dir), "DS_DATA_DIR": str(tmp_path_factory.mktemp("data")),
            "DS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}


def test_send_to_tab_makes_the_image_again_after_a_restart(app_env, tmp_path):
    with running_app(app_env, tmp_path / "first.log") as url:
        client = Client(url, verbose=False)
        gallery, _ = client.predict(TINY_MODEL, 3, 4, 0, True, api_name="/generate_unconditional")  # random seed
    with running_app(app_env, tmp_path / "second.log") as url:  # a restart: the history is still there
        client = Client(url, verbose=False)
        listing = client.predict("unconditional", "", "", None, api_name="/history_search")
        assert len(listing) == 3
        kept = [Image.open(item["image"]) for item in listing]
        newest = kept[-1]  # the last image of the run (position 2)
        ids = [image.id for image in History(__import__("pathlib").Path(app_env["DS_DATA_DIR"]) / "history",
                                               10**9).search()]
        values = client.predict(ids[-1], None, api_name="/history_send")
        model, count, steps, seed, random_seed = values[:UNCONDITIONAL_INPUTS]
        assert (model, count, steps, random_seed) == (TINY_MODEL, 3, 4, False)
        again, _ = client.predict(model, count, steps, seed, random_seed, api_name="/generate_unconditional")
        remade = Image.open(again[2]["image"])
        assert np.array_equal(np.asarray(remade), np.asarray(newest))
        assert remade.info["parameters"] == newest.info["parameters"]


def test_on_a_public_server_each_browser_sees_its_own(app_env, tmp_path):
    env = {**app_env, "DS_PUBLIC": "1", "DS_DATA_DIR": str(tmp_path / "public-data")}
    with running_app(env, tmp_path / "public.log") as url:
        client = Client(url, verbose=False)
        client.predict(TINY_MODEL, 1, 2, 5, False, "browser-a", api_name="/generate_unconditional")
        client.predict(TINY_MODEL, 2, 2, 6, False, "browser-b", api_name="/generate_unconditional")
        client.predict(TINY_MODEL, 1, 2, 7, False, api_name="/generate_unconditional")  # no id: not kept
        assert len(client.predict("All tabs", "", "", "browser-a", api_name="/history_search")) == 1
        assert len(client.predict("All tabs", "", "", "browser-b", api_name="/history_search")) == 2
        b_ids = [image.id for image in History(tmp_path / "public-data" / "history", 10**9).search("browser-b")]
        with pytest.raises(Exception, match="not in your history"):
            client.predict(b_ids[0], "browser-a", api_name="/history_send")
