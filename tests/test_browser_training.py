"""The Training tab in headless Chromium: upload a folder, train a quick job, generate from the new model."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from browser import button, gallery_images, open_page, open_tab, report_text
from test_browser import GENERATION_TIMEOUT, driver  # noqa: F401 (driver: the module-scoped browser fixture)

TRAINING_TIMEOUT = 300
MODEL_NAME = "browser-model"


@pytest.fixture
def image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for index in range(8):
        Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(tmp_path / f"{index}.png")
    return tmp_path


def choose_model(page, panel, name: str) -> None:
    """Open the Model dropdown until the name is listed (the tab change refreshes the list), then pick it."""
    model = panel.find_element(By.CSS_SELECTOR, "input[aria-label='Model']")

    def listed(d):
        model.click()
        options = d.find_elements(By.XPATH, f"//li[@role='option'][@aria-label='{name}']")
        if not options:
            model.send_keys(Keys.ESCAPE)
        return options

    WebDriverWait(page, 20, poll_frequency=0.5).until(listed)[0].click()
    WebDriverWait(page, 5).until(lambda d: model.get_attribute("value") == name)


def field(panel, label: str):
    """The text or number input of the component with this label."""
    return panel.find_element(
        By.XPATH, f".//label[.//*[normalize-space()='{label}']]//*[self::textarea or self::input]")


def replace_text(element, text: str) -> None:
    element.send_keys(Keys.CONTROL, "a")
    element.send_keys(text, Keys.TAB)


def test_upload_a_folder_train_and_generate_from_the_new_model(driver, server_url, image_folder):
    open_page(driver, server_url)
    panel = open_tab(driver, "Training", "1. Dataset")

    folder_input = panel.find_element(By.CSS_SELECTOR, "input[type=file][webkitdirectory]")
    folder_input.send_keys(str(image_folder))
    WebDriverWait(driver, 60).until(lambda d: "8 image(s) accepted" in panel.text)
    replace_text(field(panel, "Job name"), MODEL_NAME)
    replace_text(field(panel, "Steps or epochs"), "6")
    button(panel, "Start training").click()
    WebDriverWait(driver, 30).until(lambda d: f"{MODEL_NAME} is queued" in panel.text.replace("\\", ""))
    WebDriverWait(driver, TRAINING_TIMEOUT).until(lambda d: f"{MODEL_NAME}: finished" in panel.text)
    WebDriverWait(driver, 30).until(lambda d: panel.find_elements(
        By.XPATH, ".//img[contains(@src, 'step-0000006')]"))
    assert "step 6/6" in panel.text

    panel = open_tab(driver, "Unconditional", "Number of images")  # a tab change refreshes the model lists
    choose_model(driver, panel, MODEL_NAME)
    button(panel, "Generate").click()
    WebDriverWait(driver, GENERATION_TIMEOUT).until(lambda d: "DDPM steps" in report_text(panel))
    images = WebDriverWait(driver, 10).until(lambda d: gallery_images(panel, "Samples"))

    response = httpx.get(images[0].get_attribute("src"), timeout=10)
    response.raise_for_status()
    image = Image.open(io.BytesIO(response.content))
    assert image.size == (16, 16) and f"Model: {MODEL_NAME}" in image.info["parameters"]
