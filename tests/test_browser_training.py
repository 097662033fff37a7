"""The Training tab in headless Chromium: upload a folder (or a captioned zip), train a quick job, generate
from the new model (or with the new LoRA)."""

from __future__ import annotations

import io
import zipfile

import httpx
import numpy as np
import pytest
from PIL import Image
from selenium.common.exceptions import ElementClickInterceptedException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from diffusion_app.service.jobs.manager import JobManager
from diffusion_app.service.studio import Studio
from diffusion_app.settings import Settings
from diffusion_app.ui import build_app
from browser import (button, choose_option, field, gallery_images, open_page, open_tab, replace_text, report_text,
                     set_number, wait_for_job_end)
from test_browser import GENERATION_TIMEOUT, driver  # noqa: F401 (driver: the module-scoped browser fixture)
from running_app import serving
from text_training_data import squares_folder

TRAINING_TIMEOUT = 300
MODEL_NAME = "browser-model"
LORA_NAME = "browser-lora"


@pytest.fixture
def image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for index in range(8):
        Image.fromarray(rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)).save(tmp_path / f"{index}.png")
    return tmp_path


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
    wait_for_job_end(driver, panel, MODEL_NAME, TRAINING_TIMEOUT)
    WebDriverWait(driver, 30).until(lambda d: panel.find_elements(
        By.XPATH, ".//img[contains(@src, 'step-0000006')]"))
    assert "step 6/6" in panel.text

    panel = open_tab(driver, "Unconditional", "Number of images")  # a tab change refreshes the model lists
    choose_option(driver, panel, "Model", MODEL_NAME)
    button(panel, "Generate").click()
    WebDriverWait(driver, GENERATION_TIMEOUT).until(lambda d: "DDPM steps" in report_text(panel))
    images = WebDriverWait(driver, 10).until(lambda d: gallery_images(panel, "Samples"))

    response = httpx.get(images[0].get_attribute("src"), timeout=10)
    response.raise_for_status()
    image = Image.open(io.BytesIO(response.content))
    assert image.size == (16, 16) and f"Model: {MODEL_NAME}" in image.info["parameters"]


@pytest.fixture
def captioned_zip(tmp_path):
    folder = squares_folder(tmp_path / "squares", count=8, size=64)
    archive = tmp_path / "squares.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in sorted(folder.iterdir()):
            zipped.write(path, path.name)
    return archive


def test_upload_captions_train_a_lora_and_generate_with_it(driver, server_url, captioned_zip):
    open_page(driver, server_url)
    panel = open_tab(driver, "Training", "1. Dataset")
    panel.find_element(By.CSS_SELECTOR, "input[type=file][accept='.zip']").send_keys(str(captioned_zip))
    WebDriverWait(driver, 60).until(lambda d: "Captions: 8 of 8 images" in panel.text)
    assert "a red square" in panel.text
    panel.find_element(By.XPATH, ".//label[normalize-space()='LoRA, quick test']").click()
    WebDriverWait(driver, 10).until(lambda d: field(panel, "Instance prompt").is_displayed())
    replace_text(field(panel, "Job name"), LORA_NAME)
    replace_text(field(panel, "Steps or epochs"), "4")
    button(panel, "Start training").click()
    WebDriverWait(driver, 30).until(lambda d: f"{LORA_NAME} is queued" in panel.text.replace("\\", ""))
    wait_for_job_end(driver, panel, LORA_NAME, TRAINING_TIMEOUT)
    assert "LoRA list" in panel.text

    panel = open_tab(driver, "Text to image", "Negative prompt")
    choose_option(driver, panel, "LoRA", LORA_NAME)
    replace_text(field(panel, "Prompt"), "a red square")
    for label, value in (("Width", 64), ("Height", 64), ("Steps", 3)):
        set_number(panel, label, value)
    button(panel, "Generate").click()
    WebDriverWait(driver, GENERATION_TIMEOUT).until(lambda d: f"LoRA {LORA_NAME} at 1" in panel.text)
    images = WebDriverWait(driver, 10).until(lambda d: gallery_images(panel, "Images"))
    response = httpx.get(images[0].get_attribute("src"), timeout=10)
    assert f"LoRA: {LORA_NAME}, LoRA weight: 1" in Image.open(io.BytesIO(response.content)).info["parameters"]


def test_the_training_tab_asks_for_a_login_first(driver, models_dir, tmp_path):
    studio = Studio(Settings(models_dir=models_dir, data_dir=tmp_path / "data", offline=True,
                             training_auth=(("ada", "s3cret"),)))
    with serving(build_app(studio, JobManager(studio))) as url:
        open_page(driver, url)
        panel = open_tab(driver, "Training", "needs a login")
        assert "1. Dataset" not in panel.text
        replace_text(field(panel, "User name"), "ada")
        replace_text(field(panel, "Password"), "wrong")
        button(panel, "Log in").click()
        WebDriverWait(driver, 10).until(lambda d: "Wrong user name or password" in d.page_source)
        replace_text(field(panel, "Password"), "s3cret")
        WebDriverWait(driver, 10, ignored_exceptions=[ElementClickInterceptedException]).until(
            lambda d: button(panel, "Log in").click() or True)  # once the error's overlay has gone
        WebDriverWait(driver, 10).until(lambda d: "1. Dataset" in panel.text)
        assert "needs a login" not in panel.text


def chart_reading(block) -> tuple[list[tuple[float, float]], list[str]]:
    """(step, loss) of each point the loss chart draws and its axes' descriptions, as Vega labels them for
    screen readers."""
    labels = [element.get_attribute("aria-label") or "" for element in
              block.find_elements(By.CSS_SELECTOR, "[aria-label^='step: ']")]
    points = {tuple(float(part.split(": ")[1]) for part in label.split("; ")) for label in labels}
    axes = [element.get_attribute("aria-label") for element in
            block.find_elements(By.CSS_SELECTOR, "[aria-roledescription=axis]")]
    return sorted(points), axes


def grown(reading):
    """The chart's reading once it has eight points, else None (keep waiting)."""
    return reading if len(reading[0]) >= 8 else None


def test_the_live_loss_chart_plots_falling_numbers_while_a_job_runs(driver, server_url, image_folder):
    """The chart the page updates while training (not after a reload) has numeric axes, and the loss falls."""
    open_page(driver, server_url)
    panel = open_tab(driver, "Training", "1. Dataset")
    panel.find_element(By.CSS_SELECTOR, "input[type=file][webkitdirectory]").send_keys(str(image_folder))
    WebDriverWait(driver, 60).until(lambda d: "8 image(s) accepted" in panel.text)
    replace_text(field(panel, "Job name"), "live-chart")
    replace_text(field(panel, "Steps or epochs"), "100000")
    button(panel, "Start training").click()
    chart = panel.find_element(By.XPATH, ".//div[contains(@class,'block')][.//*[@data-testid='block-info']"
                                         "[normalize-space()='Loss']]")
    points, axes = WebDriverWait(driver, TRAINING_TIMEOUT, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda d: grown(chart_reading(chart)))  # the chart is redrawn as it grows
    assert any(label.startswith("X-axis titled 'step' for a linear scale") for label in axes), axes
    assert any(label.startswith("Y-axis titled 'loss' for a linear scale") for label in axes), axes
    assert points[-1][1] < points[0][1], points
    button(panel, "Cancel").click()
    WebDriverWait(driver, 60).until(lambda d: "live-chart: cancelled" in panel.text)
