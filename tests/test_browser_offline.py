"""A fresh checkout with no network, tried as a new user would: `python app.py` on the bundled models in models/
only (an empty Hugging Face cache, offline), and Generate on each of the six generation tabs draws images
without an error."""

from __future__ import annotations

import os

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from browser import (CHROMEDRIVER, CHROMIUM, browser_available, button, chromium, gallery_images, open_page,
                     open_tab, set_number)
from running_app import running_app

if not browser_available():
    pytest.skip(f"browser tests need {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)",
                allow_module_level=True)

# tab: (a label it shows, the steps slider, steps, a prompt or None, words of its final report, the gallery)
TABS = {
    "Unconditional": ("Number of images", "Steps", 20, None, "DDPM steps in", "Samples"),
    "DDIM step control": ("DDIM steps", "DDIM steps", 10, None, "ms/step)", "Predicted clean image x0"),
    "Digits": ("Samples per digit", "Steps", 10, None, "steps · CFG scale", "Individual samples"),
    "Colour guidance": ("Target colour", "Steps", 10, None, "Mean distance to", "Guided"),
    "CLIP guidance": ("CLIP weights", "Steps", 10, "red heart", "cutouts ·",
                      "Samples (previews show the predicted clean images)"),
    "Text to image": ("Negative prompt", "Steps", 10, "red heart", "DPM++ 2M steps,", "Images"),
}


@pytest.fixture(scope="module")
def offline_app(tmp_path_factory):
    """The app as a fresh offline checkout starts it: models/ as shipped, nothing in the Hugging Face cache."""
    env = {**os.environ, "DS_DATA_DIR": str(tmp_path_factory.mktemp("data")), "DS_OFFLINE": "1",
           "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path_factory.mktemp("empty-hf-home")),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("DS_MODELS_DIR", None)
    with running_app(env, tmp_path_factory.mktemp("logs") / "app.log") as url:
        yield url


def error_toasts(driver) -> list[str]:
    toasts = driver.find_elements(By.CSS_SELECTOR, ".toast-body.error")
    return [" ".join(toast.get_attribute("textContent").split()) for toast in toasts]


def test_every_generation_tab_draws_images_offline(offline_app):
    with chromium() as driver:
        open_page(driver, offline_app)
        for title, (label, steps_label, steps, prompt, done, gallery) in TABS.items():
            panel = open_tab(driver, title, label)
            set_number(panel, steps_label, steps)
            if prompt:
                panel.find_element(By.XPATH, ".//label[.//*[normalize-space()='Prompt']]//textarea").send_keys(prompt)
            button(panel, "Generate").click()
            WebDriverWait(driver, 120).until(lambda d: done in panel.text or error_toasts(d), f"{title}: no report")
            assert not error_toasts(driver), f"{title}: {error_toasts(driver)}"
            assert WebDriverWait(driver, 20).until(lambda d: gallery_images(panel, gallery, first=1)), title
