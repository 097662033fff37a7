"""The learner's workbench in headless Chromium: a sweep, the history sending an image back to its tab, the
forward process and image to image, clicked as a user would."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from browser import button, choose_option, field, gallery_images, open_page, open_tab, replace_text, set_number
from test_browser import GENERATION_TIMEOUT, driver  # noqa: F401 (driver: the module-scoped browser fixture)


@pytest.fixture
def page(driver, server_url):  # noqa: F811
    return open_page(driver, server_url)


@pytest.fixture
def picture(tmp_path) -> str:
    path = tmp_path / "start.png"
    Image.fromarray(np.random.default_rng(3).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(path)
    return str(path)


def test_a_sweep_then_the_history_sends_an_image_back(page):
    panel = open_tab(page, "Unconditional", "Number of images")
    set_number(panel, "Steps", 3)
    panel.find_element(By.XPATH, ".//*[normalize-space()='X/Y/Z sweep']").click()
    WebDriverWait(page, 10).until(lambda d: panel.find_elements(By.CSS_SELECTOR, "input[aria-label='X axis']"))
    choose_option(page, panel, "X axis", "Steps")
    replace_text(field(panel, "X values"), "2, 4")
    button(panel, "Run sweep").click()
    WebDriverWait(page, GENERATION_TIMEOUT).until(lambda d: "2 cells · Steps: 2, 4" in panel.text)
    assert len(WebDriverWait(page, 10).until(lambda d: gallery_images(panel, "Cells"))) >= 2

    panel = open_tab(page, "History", "Images, newest first")
    images = WebDriverWait(page, 20).until(lambda d: gallery_images(panel, "Images, newest first", first=1))
    images[0].click()
    WebDriverWait(page, 10).until(lambda d: "Steps: 4" in panel.text or "Steps: 2" in panel.text)
    shown_steps = 4 if "Steps: 4" in panel.text else 2
    button(panel, "Send to its tab").click()
    panel = WebDriverWait(page, 10).until(lambda d: open_tab(d, "Unconditional", "Number of images"))
    steps = panel.find_element(By.CSS_SELECTOR, "input[aria-label='number input for Steps']")
    WebDriverWait(page, 10).until(lambda d: steps.get_attribute("value") == str(shown_steps))


def test_forward_process_and_image_to_image(page, picture):
    panel = open_tab(page, "Forward process", "Noise schedule")
    panel.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(picture)
    button(panel, "Noise it").click()
    WebDriverWait(page, GENERATION_TIMEOUT).until(lambda d: len(gallery_images(panel, "x_t")) == 7)

    panel = open_tab(page, "Image to image", "Strength")
    panel.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(picture)
    set_number(panel, "Steps", 6)
    set_number(panel, "Number of images", 2)
    button(panel, "Generate").click()
    WebDriverWait(page, GENERATION_TIMEOUT).until(lambda d: "strength 0.6: 3 of 6" in panel.text)
    assert len(gallery_images(panel, "Results")) == 2

    # Show the code: the script reads the picture it started from (downloaded with it).
    panel.find_element(By.XPATH, ".//button[.//*[normalize-space()='Show the code']]").click()
    WebDriverWait(page, 10).until(lambda d: "STRENGTH = 0.6" in panel.find_element(By.CSS_SELECTOR, ".cm-content").text)
    assert "START = Path(__file__).with_name(\"start.png\")" in panel.find_element(By.CSS_SELECTOR, ".cm-content").text
    assert button(panel, "Download the script").is_displayed()
