"""A public server (DS_PUBLIC=1, as on a Space): two visitors, signed in, never see or touch each other's jobs
or the models their jobs trained, and each browser sees only its own history; typed hub ids and paths are
refused; per-visitor limits hold; the Models tab hides paths and unloading.

Visitors sign in with DS_TRAINING_AUTH here, as locally; on a Space the same handlers take their name from the
Hugging Face login (gr.OAuthProfile), checked directly at the end."""

from __future__ import annotations

import shutil
from dataclasses import replace

import gradio as gr
import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from diffusion_app.catalog import UnknownModelError
from diffusion_app.service.history import History
from diffusion_app.service.jobs.options import JobOptions
from diffusion_app.service.jobs.store import FINISHED
from diffusion_app.service.jobs.manager import JobManager
from diffusion_app.service.generation.text2img import TextToImageRequest, TextToImageRun
from diffusion_app.service.visitors import Visitor
from diffusion_app.ui import build_app
from diffusion_app.ui.visitor import current_visitor
from conftest import TINY_MODEL
from running_app import serving
from test_training_api import job_options

USERS = (("ada", "ada-pass"), ("bob", "bob-pass"), ("root", "root-pass"))


@pytest.fixture(scope="module")
def public(models_dir, tiny_clip, tmp_path_factory):
    """The app in this process as a public server; its job queue is not started, so jobs stay queued."""
    from diffusion_app.service.studio import Studio
    from diffusion_app.settings import Settings

    settings = Settings(models_dir=models_dir, data_dir=tmp_path_factory.mktemp("data"), offline=True, public=True,
                        training_auth=USERS, admins=("root",), max_jobs_per_visitor=1, max_uploads_per_hour=3,
                        allow_hub_datasets=False, clip_configs=(tiny_clip[0],))
    studio = Studio(settings)
    jobs = JobManager(studio)
    with serving(build_app(studio, jobs)) as url:
        yield url, jobs


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("upload")
    rng = np.random.default_rng(0)
    for index in range(4):
        Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(folder / f"{index}.png")
    return sorted(folder.iterdir())


def signed_in(url: str, user: str) -> Client:
    client = Client(url, verbose=False)
    client.predict(user, dict(USERS)[user], api_name="/training_login")
    return client


def jobs_listed(client: Client) -> list[str]:
    return [row[1] for row in client.predict(None, api_name="/refresh_jobs")[0]["data"]]


def test_visitors_see_and_manage_only_their_own_jobs(public, images):
    url, jobs = public
    ada, bob, root = (signed_in(url, user) for user, _ in USERS)
    ada.predict([handle_file(path) for path in images], 16, api_name="/inspect_dataset")
    message, _ = ada.predict(*job_options("ada-model", 4), api_name="/start_job")
    assert "ada\\-model" in message
    ada_job = next(job for job in jobs.jobs() if job.name == "ada-model")
    assert ada_job.owner == "ada"

    assert jobs_listed(ada) == ["ada-model"]
    assert jobs_listed(bob) == []
    assert jobs_listed(root) == ["ada-model"]  # an admin sees every job
    bob_visitor = Visitor("bob")
    for act in (lambda: jobs.cancel(ada_job.id, bob_visitor), lambda: jobs.delete(ada_job.id, bob_visitor),
                lambda: jobs.rename(ada_job.id, "mine now", bob_visitor), lambda: jobs.resume(ada_job.id, bob_visitor),
                lambda: jobs.push_to_hub(ada_job.id, "bob/stolen", "token", bob_visitor)):
        with pytest.raises(ValueError, match=f"There is no job #{ada_job.id}"):
            act()
    for endpoint, args in (("/cancel_job", ()), ("/resume_job", ()), ("/delete_job", (True,)),
                           ("/rename_job", ("mine now",)), ("/push_job", ("bob/stolen", "token"))):
        with pytest.raises(AppError):  # the id is not among bob's choices, and the service would refuse it too
            bob.predict(ada_job.id, *args, api_name=endpoint)
    assert jobs.job(ada_job.id).status == "queued" and jobs.job(ada_job.id).name == "ada-model"


def test_a_model_a_visitor_trained_is_theirs_alone(public, models_dir, images):
    """Listed, generated from and fine-tuned by its visitor (and the operators) only, through the page and the
    service alike."""
    url, jobs = public
    job = jobs.store.add("ada-trained", FINISHED, {}, {}, owner="ada")
    shutil.copytree(models_dir / TINY_MODEL, jobs.pipeline_folder(job))
    jobs.recover()  # as after a restart: finished jobs' models join the catalog
    ada, bob, root = (signed_in(url, user) for user, _ in USERS)
    for client in (ada, bob, root):
        client.predict(api_name="/refresh_models")
    models = {name: [row[0] for row in client.predict(api_name="/list_models")[0]["data"]]
              for name, client in (("ada", ada), ("bob", bob), ("root", root))}
    assert "ada-trained" in models["ada"] and "ada-trained" in models["root"] and "ada-trained" not in models["bob"]
    assert TINY_MODEL in models["bob"]  # the server's own models are everyone's

    gallery, _ = ada.predict("ada-trained", 1, 2, 0, False, api_name="/generate_unconditional")
    assert len(gallery) == 1
    with pytest.raises(AppError):  # never among bob's choices
        bob.predict("ada-trained", 1, 2, 0, False, api_name="/generate_unconditional")
    upload_id, _ = jobs.uploads.inspect(images, visitor=Visitor("bob"))
    fine_tune = JobOptions(name="bob-copy", base_model="ada-trained", steps=1)
    with pytest.raises(ValueError, match="Unknown model 'ada-trained'"):
        jobs.submit(upload_id, fine_tune, Visitor("bob"))
    assert "ada-trained" not in jobs.studio.model_names(visitor=None)  # nor anyone not signed in


def test_per_visitor_limits_hold(public, images):
    url, jobs = public
    ada = signed_in(url, "ada")  # ada has one queued job from the test above, the most DS_MAX_JOBS_PER_VISITOR allows
    ada.predict([handle_file(images[0])], 16, api_name="/inspect_dataset")
    with pytest.raises(AppError, match="the most this server allows one visitor"):
        ada.predict(*job_options("ada-second", 4), api_name="/start_job")
    carol = Visitor("carol")
    for _ in range(3):
        jobs.uploads.inspect([images[0]], visitor=carol)
    with pytest.raises(ValueError, match="3 uploads in the last hour"):
        jobs.uploads.inspect([images[0]], visitor=carol)
    jobs.uploads.inspect([images[0]], visitor=Visitor("root", admin=True))  # operators are not counted
    with pytest.raises(ValueError, match="does not load datasets by name"):
        jobs.uploads.inspect_dataset("huggan/smithsonian_butterflies_subset", visitor=Visitor("dave"))


def test_typed_hub_ids_and_paths_are_refused(public, tiny_clip, tmp_path):
    url, jobs = public
    client = Client(url, verbose=False)
    for model in ("someone/huge-model", str(tmp_path)):
        with pytest.raises(AppError):  # the model box takes listed models only
            client.predict(model, "a fox", "", "Euler", 2, 7.5, 64, 64, 1, 1, 5, False, api_name="/generate_text2img")
        with pytest.raises(UnknownModelError, match="serves its listed models only"):  # and so does the service
            TextToImageRun(jobs.studio, TextToImageRequest(model, "a fox", steps=2, width=64, height=64))
    answers = []
    for weights in (str(tiny_clip[1]), "/etc/passwd", "/no/such/file.safetensors"):
        with pytest.raises(AppError) as refused:
            client.predict(TINY_MODEL, "a fox", "ViT-B-32", weights, 10, "fast", 1, 1, 2, "DDIM", 1, 0, 1, 5,
                           False, api_name="/generate_clip_guidance")
        answers.append(str(refused.value))
    assert len(set(answers)) == 1 and "offers these CLIP models only" in answers[0]  # nothing tells files apart
    table = client.predict(api_name="/list_models")[0]
    assert "Source" not in table["headers"]
    with pytest.raises(AppError, match="only its operators"):
        client.predict(TINY_MODEL, api_name="/unload_model")


def test_a_hugging_face_login_is_the_visitor(public):
    url, jobs = public
    settings = replace(jobs.settings, training_auth=())
    profile = gr.OAuthProfile({"preferred_username": "ada", "name": "Ada", "profile": "", "picture": ""})
    assert current_visitor(settings, "", profile) == Visitor("ada")
    assert current_visitor(settings, "", gr.OAuthProfile({"preferred_username": "root", "name": "", "profile": "",
                                                          "picture": ""})) == Visitor("root", admin=True)
    with pytest.raises(ValueError, match="Sign in to train"):
        current_visitor(settings, "", None)
    assert current_visitor(replace(settings, public=False), "", None) is None  # a private server: shared jobs


def test_each_browser_sees_only_its_own_history(public):
    url, jobs = public
    client = Client(url, verbose=False)
    client.predict(TINY_MODEL, 1, 2, 5, False, "browser-a", api_name="/generate_unconditional")
    client.predict(TINY_MODEL, 2, 2, 6, False, "browser-b", api_name="/generate_unconditional")
    client.predict(TINY_MODEL, 1, 2, 7, False, api_name="/generate_unconditional")  # no id: not kept
    assert len(client.predict("All tabs", "", "", "browser-a", api_name="/history_search")) == 1
    assert len(client.predict("All tabs", "", "", "browser-b", api_name="/history_search")) == 2
    b_ids = [image.id for image in History(jobs.settings.data_dir / "history", 10**9).search("browser-b")]
    with pytest.raises(AppError, match="not in your history"):
        client.predict(b_ids[0], "browser-a", api_name="/history_send")
