"""A fresh checkout with no network, tried as a new user would: `python app.py` on the bundled models in models/
only (an empty Hugging Face cache, offline), and one click at the defaults on each of the nine tabs that draw
(the six generation tabs, Image to image, Inpaint, Forward process) draws images without an error. Started
twice: as on a local machine, and as a Hugging Face Space starts it (the variables a Gradio Space sets, OAuth on,
ZeroGPU forced on the CPU), where the Training tab's "Sign in with Hugging Face" must lead to the Hub's OAuth page."""

from __future__ import annotations

import json
import os
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from browser import CHROMEDRIVER, CHROMIUM, browser_available, button, chromium, gallery_images, open_page, open_tab
from running_app import running_app

if not browser_available():
    pytest.skip(f"browser tests need {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)",
                allow_module_level=True)

# tab: (a label it shows, its button, words of its final report or None, the gallery); clicked at its defaults
TABS = {
    "Unconditional": ("Number of images", "Generate", "DDPM steps in", "Samples"),
    "DDIM step control": ("DDIM steps", "Generate", "ms/step)", "Predicted clean image x0"),
    "Digits": ("Samples per digit", "Generate", "steps · CFG scale", "Individual samples"),
    "Colour guidance": ("Target colour", "Generate", "Mean distance to", "Guided"),
    "CLIP guidance": ("CLIP weights", "Generate", "cutouts ·", "Samples (previews show the predicted clean images)"),
    "Text to image": ("Negative prompt", "Generate", "DPM++ 2M steps,", "Images"),
    "Image to image": ("Strength", "Generate", "strength 0.6:", "Results"),
    "Inpaint": ("Jump length", "Generate", "model steps in", "Results"),
    "Forward process": ("Noise schedule", "Noise it", None, "x_t"),
}


class OpenIdProvider(BaseHTTPRequestHandler):
    """The Hub's OpenID configuration, which gradio's OAuth (authlib) reads when a visitor clicks Sign in."""

    def do_GET(self):
        base = f"http://{self.headers['Host']}"
        body = json.dumps({"issuer": base, "authorization_endpoint": f"{base}/oauth/authorize",
                           "token_endpoint": f"{base}/oauth/token", "userinfo_endpoint": f"{base}/oauth/userinfo",
                           "jwks_uri": f"{base}/oauth/jwks"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def openid_provider():
    server = ThreadingHTTPServer(("127.0.0.1", 0), OpenIdProvider)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def space_environment(provider: str) -> dict[str, str]:
    """What a Gradio Space with `hf_oauth: true` sets (huggingface.co/docs/hub/spaces-oauth), and ZeroGPU forced:
    the real `spaces` package wraps every GPU call, which on this CPU runs in the process."""
    return {"SPACE_ID": "someone/diffusion-studio", "SPACE_HOST": "someone-diffusion-studio.hf.space",
            "SYSTEM": "spaces", "SPACE_AUTHOR_NAME": "someone", "SPACE_REPO_NAME": "diffusion-studio",
            "OAUTH_CLIENT_ID": "client-id", "OAUTH_CLIENT_SECRET": "client-secret",
            "OAUTH_SCOPES": "openid profile contribute-repos", "OPENID_PROVIDER_URL": provider,
            "DS_ZEROGPU": "1", "DS_DEVICE": "cpu", "DS_DTYPE": "float32"}


@pytest.fixture(scope="module", params=["local", "space"])
def offline_app(request, openid_provider, tmp_path_factory):
    """The app as a fresh offline checkout starts it: models/ as shipped, nothing in the Hugging Face cache."""
    env = {**os.environ, "DS_DATA_DIR": str(tmp_path_factory.mktemp("data")), "DS_OFFLINE": "1",
           "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path_factory.mktemp("empty-hf-home")),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("DS_MODELS_DIR", None)
    if request.param == "space":
        env.update(space_environment(openid_provider))
    with running_app(env, tmp_path_factory.mktemp("logs") / "app.log") as url:
        yield request.param, url


def error_toasts(driver) -> list[str]:
    toasts = driver.find_elements(By.CSS_SELECTOR, ".toast-body.error")
    return [" ".join(toast.get_attribute("textContent").split()) for toast in toasts]


def test_every_generation_tab_draws_images_offline_at_its_defaults(offline_app):
    """A new user's first click: every tab's button at its defaults (prompts and pictures prefilled) draws."""
    _, url = offline_app
    with chromium() as driver:
        open_page(driver, url)
        for title, (label, button_text, done, gallery) in TABS.items():
            panel = open_tab(driver, title, label)
            button(panel, button_text).click()
            WebDriverWait(driver, 120).until(lambda d: gallery_images(panel, gallery, first=1) or error_toasts(d),
                                             f"{title}: no image")
            if done:
                WebDriverWait(driver, 120).until(lambda d: done in panel.text or error_toasts(d), f"{title}: no report")
            assert not error_toasts(driver), f"{title}: {error_toasts(driver)}"


def test_sign_in_with_hugging_face_is_offered_on_a_space_only(offline_app, openid_provider):
    started_as, url = offline_app
    with chromium() as driver:
        open_page(driver, url)
        panel = open_tab(driver, "Training", "1. Dataset")
        sign_in = panel.find_elements(By.XPATH, ".//button[normalize-space()='Sign in with Hugging Face']")
        assert [element.is_displayed() for element in sign_in] == ([True] if started_as == "space" else [])
    if started_as == "local":
        return
    login = httpx.get(f"{url}login/huggingface", follow_redirects=False, timeout=30)
    assert login.status_code in (302, 307), login.text
    authorize = urllib.parse.urlparse(login.headers["location"])
    query = urllib.parse.parse_qs(authorize.query)
    assert f"{authorize.scheme}://{authorize.netloc}{authorize.path}" == f"{openid_provider}/oauth/authorize"
    assert query["client_id"] == ["client-id"] and "contribute-repos" in query["scope"][0]
