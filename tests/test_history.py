"""The history: every generated image kept with its parameters, found again, sent back to its tab to make it
again pixel for pixel, surviving a restart. (On a public server each browser sees its own: test_public_server.py.)"""

from __future__ import annotations

from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from diffusion_app.core.metadata import with_parameters
from diffusion_app.service.history import History
from diffusion_app.service.studio import Studio
from diffusion_app.settings import Settings
from diffusion_app.ui import build_app
from diffusion_app.ui.history import restored_inputs
from conftest import TINY_MODEL
from running_app import serving

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


def tiny_app(models_dir, data_dir):
    """The app on the tiny models; a second one on the same data dir is the app after a restart."""
    return build_app(Studio(Settings(models_dir=models_dir, data_dir=data_dir, offline=True)))


def test_send_to_tab_makes_the_image_again_after_a_restart(models_dir, tmp_path):
    with serving(tiny_app(models_dir, tmp_path / "data")) as url:
        client = Client(url, verbose=False)
        gallery, _ = client.predict(TINY_MODEL, 3, 4, 0, True, api_name="/generate_unconditional")  # random seed
    with serving(tiny_app(models_dir, tmp_path / "data")) as url:  # a restart: the history is still there
        client = Client(url, verbose=False)
        listing = client.predict("unconditional", "", "", None, api_name="/history_search")
        assert len(listing) == 3
        kept = [Image.open(item["image"]) for item in listing]
        newest = kept[-1]  # the last image of the run (position 2)
        ids = [image.id for image in History(tmp_path / "data" / "history", 10**9).search()]
        values = client.predict(ids[-1], None, api_name="/history_send")
        model, count, steps, seed, random_seed = values[:UNCONDITIONAL_INPUTS]
        assert (model, count, steps, random_seed) == (TINY_MODEL, 3, 4, False)
        again, _ = client.predict(model, count, steps, seed, random_seed, api_name="/generate_unconditional")
        remade = Image.open(again[2]["image"])
        assert np.array_equal(np.asarray(remade), np.asarray(newest))
        assert remade.info["parameters"] == newest.info["parameters"]


def test_an_inpainting_sent_back_restores_the_picture_and_mask_and_makes_it_again(models_dir, tmp_path):
    """The Inpaint tab's inputs include images (the editor's picture and layers, an uploaded mask): the history
    keeps them as files, and sending the image back fills the editor and the mask again."""
    from test_inpainting import box_mask, noise_picture

    noise_picture(16, 16).save(tmp_path / "in.png")
    box_mask((16, 16), (0, 0, 7, 15)).save(tmp_path / "mask.png")
    app = tiny_app(models_dir, tmp_path / "data")
    with serving(app) as url:
        client = Client(url, verbose=False)
        editor = {"background": handle_file(str(tmp_path / "in.png")), "layers": [], "composite": None}
        options = ("Replace the known part", 2, 2, "", "", 7.5, 1.0, 4, "Whole picture", 8, 0, 0, 0, 0, "DDIM", 3, 1,
                   0, True)
        _, gallery, _ = client.predict(TINY_MODEL, editor, handle_file(str(tmp_path / "mask.png")), *options,
                                       api_name="/generate_inpaint")
        made = Image.open(gallery[0]["image"])
        image_id = History(tmp_path / "data" / "history", 10**9).search()[0].id
        send = next(fn for fn in app.fns.values() if getattr(fn.fn, "__name__", "") == "send_to_tab")
        _, *updates = next(send.fn(image_id))
        restored = {id(component): value for component, value in zip(send.outputs[1:], updates)}
        editor_value = next(restored[id(c)] for c in send.outputs[1:] if isinstance(c, gr.ImageEditor))
        mask_value = next(restored[id(c)] for c in send.outputs[1:] if getattr(c, "label", "") ==
                          "Or upload a mask (white redraws; painting wins)")
        assert np.array_equal(np.asarray(Image.open(editor_value["background"]).convert("RGB")),
                              np.asarray(Image.open(tmp_path / "in.png")))
        assert np.array_equal(np.asarray(Image.open(mask_value)), np.asarray(Image.open(tmp_path / "mask.png")))

        editor_again = {"background": handle_file(editor_value["background"]), "layers": [], "composite": None}
        seed = int(made.info["parameters"].split("Seed: ")[1].split(",")[0])
        _, again, _ = client.predict(TINY_MODEL, editor_again, handle_file(mask_value), *options[:-2], seed, False,
                                     api_name="/generate_inpaint")
        assert np.array_equal(np.asarray(Image.open(again[0]["image"])), np.asarray(made))


def test_a_run_kept_before_its_tab_gained_a_control_leaves_that_control_as_it_is():
    """Text to image gained "Cut long prompts" as its last input; runs kept before it still go back to the tab."""
    kept = SimpleNamespace(inputs=["red heart", 7, True], parameters="red heart\nSteps: 4, Seed: 7", position=0)
    components = [gr.Textbox(label="Prompt"), gr.Number(label="Seed"), gr.Checkbox(label="Random seed"),
                  gr.Checkbox(label="Cut long prompts at the context")]
    restored = restored_inputs(kept, components)
    assert restored[:3] == ["red heart", 7, False] and len(restored) == 4
    assert restored[3] == gr.skip()
