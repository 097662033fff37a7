"""The learner's workbench in headless Chromium: a sweep, the history sending an image back to its tab, the
forward process and image to image, clicked as a user would."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image
from selenium.webdriver.common.action_chains import ActionChains
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


def test_inpaint_redraws_the_part_painted_with_the_mouse(page):
    panel = open_tab(page, "Inpaint", "Jump length")
    brush = WebDriverWait(page, 20).until(lambda d: panel.find_elements(By.CSS_SELECTOR, "button[aria-label='Brush']"))
    brush[0].click()
    canvas = WebDriverWait(page, 10).until(lambda d: panel.find_elements(By.TAG_NAME, "canvas"))[-1]
    stroke = ActionChains(page).move_to_element_with_offset(canvas, -60, 0).click_and_hold()
    for _ in range(4):  # a horizontal stroke across the face's middle
        stroke = stroke.move_by_offset(30, 0)
    stroke.release().perform()
    set_number(panel, "Steps", 4)
    set_number(panel, "Number of images", 2)
    button(panel, "Generate").click()
    WebDriverWait(page, GENERATION_TIMEOUT).until(lambda d: "RePaint: " in panel.text
                                                  and "model steps in" in panel.text)
    canvas_view = gallery_images(panel, "The canvas and its mask (white is redrawn)")
    mask = Image.open(io.BytesIO(httpx.get(canvas_view[1].get_attribute("src"), timeout=30).content))
    painted = np.asarray(mask.convert("L")) == 255
    assert 0 < painted.mean() < 0.5 and painted[mask.height // 2].any()  # the stroke, and only the stroke
    results = gallery_images(panel, "Results")
    assert len(results) == 2
    compared = WebDriverWait(page, 20).until(  # the canvas and the first result, in the before/after slider
        lambda d: gallery_images(panel, "Before and after (the canvas and the first result)"))
    halves = [Image.open(io.BytesIO(httpx.get(image.get_attribute("src"), timeout=30).content)) for image in compared]
    first_result = Image.open(io.BytesIO(httpx.get(results[0].get_attribute("src"), timeout=30).content))
    assert len(halves) == 2 and np.array_equal(np.asarray(halves[1]), np.asarray(first_result))
    parameters = Image.open(io.BytesIO(httpx.get(results[0].get_attribute("src"), timeout=30).content)).info
    assert "Inpainting: RePaint, Jump length: 5, Resampling: 3, Mask: " in parameters["parameters"]
