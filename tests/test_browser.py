"""The real page in headless Chromium: click Generate, wait for images, check what a download gets."""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import httpx
import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
    pytest.skip(f"browser tests need {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)",
                allow_module_level=True)

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHROMIUM_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1400,1000")
GENERATION_TIMEOUT = 60


@pytest.fixture(scope="module")
def driver():
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in CHROMIUM_ARGS:
        options.add_argument(argument)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        browser = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
        try:
            yield browser
        finally:
            browser.quit()


@pytest.fixture
def page(driver, server_url):
    driver.get(server_url)
    WebDriverWait(driver, 30).until(lambda d: visible_panel(d) is not None)
    return driver


def visible_panel(driver):
    """The tab panel now shown, or None while the page is still rendering."""
    panels = [panel for panel in driver.find_elements(By.CSS_SELECTOR, "[role=tabpanel]") if panel.is_displayed()]
    return panels[0] if len(panels) == 1 else None


def button(panel, text: str):
    return panel.find_element(By.XPATH, f".//button[normalize-space()='{text}']")


def gallery_images(panel, label: str) -> list:
    """The gallery's images once the browser has decoded every one of them, else an empty list."""
    block = panel.find_element(
        By.XPATH, f".//div[contains(@class,'block')][.//label[@data-testid='block-label'][normalize-space()='{label}']]")
    images = block.find_elements(By.TAG_NAME, "img")
    loaded = panel.parent.execute_script("return arguments[0].every(i => i.complete && i.naturalWidth > 0)", images)
    return images if loaded else []


def report_text(panel) -> str:
    return panel.find_element(By.CSS_SELECTOR, "[data-testid=markdown]").text


def screenshot(driver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(SCREENSHOTS / name))


def test_unconditional_generate_serves_png_with_parameters(page):
    panel = visible_panel(page)
    steps = panel.find_element(By.CSS_SELECTOR, "input[aria-label='number input for Steps']")
    steps.send_keys(Keys.CONTROL, "a")
    steps.send_keys("20", Keys.TAB)
    WebDriverWait(page, 5).until(
        lambda d: panel.find_element(By.CSS_SELECTOR, "input[aria-label='range slider for Steps']")
        .get_attribute("value") == "20")

    button(panel, "Generate").click()
    WebDriverWait(page, GENERATION_TIMEOUT).until(lambda d: "DDPM steps" in report_text(panel))
    images = WebDriverWait(page, 10).until(lambda d: gallery_images(panel, "Samples"))
    screenshot(page, "unconditional.png")

    source = images[0].get_attribute("src")
    assert source.startswith(page.current_url.rstrip("/")), source
    response = httpx.get(source, timeout=10)
    response.raise_for_status()
    assert response.content.startswith(PNG_SIGNATURE)
    parameters = Image.open(io.BytesIO(response.content)).info.get("parameters", "")
    assert "Seed:" in parameters and "Steps: 20" in parameters, parameters


def test_ddim_tab_streams_both_galleries(page):
    page.find_element(By.XPATH, "//button[@role='tab'][normalize-space()='DDIM step control']").click()
    WebDriverWait(page, 10).until(lambda d: (panel := visible_panel(d)) is not None
                                  and panel.find_elements(By.XPATH, ".//*[normalize-space()='DDIM steps']"))
    panel = visible_panel(page)

    button(panel, "Generate").click()
    WebDriverWait(page, GENERATION_TIMEOUT).until(
        lambda d: "DDIM steps" in report_text(panel)
        and gallery_images(panel, "x_t: the current noisy sample")
        and gallery_images(panel, "Predicted clean image x0"))
    screenshot(page, "ddim.png")


def test_colour_guidance_tab_shows_unguided_and_guided_with_the_loss_plot(page):
    page.find_element(By.XPATH, "//button[@role='tab'][normalize-space()='Colour guidance']").click()
    WebDriverWait(page, 10).until(lambda d: (panel := visible_panel(d)) is not None
                                  and panel.find_elements(By.XPATH, ".//*[normalize-space()='Target colour']"))
    panel = visible_panel(page)
    steps = panel.find_element(By.CSS_SELECTOR, "input[aria-label='number input for Steps']")
    steps.send_keys(Keys.CONTROL, "a")
    steps.send_keys("12", Keys.TAB)

    button(panel, "Generate").click()
    WebDriverWait(page, GENERATION_TIMEOUT).until(
        lambda d: "Mean distance" in report_text(panel)
        and gallery_images(panel, "Guided") and gallery_images(panel, "Unguided (same seed)"))
    plot = panel.find_element(By.CSS_SELECTOR, ".loss-plot")
    WebDriverWait(page, 10).until(lambda d: plot.find_elements(By.CSS_SELECTOR, "svg")
                                  and {"guided", "unguided"} <= set(plot.text.split("\n")))  # both legend entries
    page.execute_script("window.scrollTo(0, 0)")
    screenshot(page, "colour_guidance.png")
    assert "12 DDIM steps" in report_text(panel)

    source = gallery_images(panel, "Guided")[0].get_attribute("src")
    response = httpx.get(source, timeout=10)
    response.raise_for_status()
    parameters = Image.open(io.BytesIO(response.content)).info.get("parameters", "")
    assert "Guidance: colour" in parameters and "Colour: #e8702a" in parameters, parameters


def test_text2img_generates_and_reads_its_parameters_back(page, tmp_path):
    page.find_element(By.XPATH, "//button[@role='tab'][normalize-space()='Text to image']").click()
    WebDriverWait(page, 10).until(lambda d: (panel := visible_panel(d)) is not None
                                  and panel.find_elements(By.XPATH, ".//*[normalize-space()='CFG scale']"))
    panel = visible_panel(page)
    prompt = panel.find_element(By.CSS_SELECTOR, "textarea[placeholder^='a watercolor']")
    prompt.send_keys("a lighthouse at dawn, oil painting")
    for label, value in (("Steps", "6"), ("Width", "64"), ("Height", "64")):
        field = panel.find_element(By.CSS_SELECTOR, f"input[aria-label='number input for {label}']")
        field.send_keys(Keys.CONTROL, "a")
        field.send_keys(value, Keys.TAB)

    button(panel, "Generate").click()
    WebDriverWait(page, GENERATION_TIMEOUT).until(lambda d: "6 DPM++ 2M steps" in panel.text)
    images = WebDriverWait(page, 10).until(lambda d: gallery_images(panel, "Images"))
    page.execute_script("window.scrollTo(0, 0)")
    screenshot(page, "text2img.png")
    response = httpx.get(images[0].get_attribute("src"), timeout=10)
    response.raise_for_status()
    parameters = Image.open(io.BytesIO(response.content)).info.get("parameters", "")
    assert parameters.startswith("a lighthouse at dawn, oil painting\nSteps: 6, Sampler: DPM++ 2M"), parameters

    png = tmp_path / "made-here.png"
    png.write_bytes(response.content)
    prompt.send_keys(Keys.CONTROL, "a")
    prompt.send_keys("something else")
    panel.find_element(By.XPATH, ".//*[normalize-space()='Read parameters from a PNG']").click()
    upload = "#read-parameters-png input[type=file]"
    WebDriverWait(page, 10).until(lambda d: panel.find_elements(By.CSS_SELECTOR, upload))
    panel.find_element(By.CSS_SELECTOR, upload).send_keys(str(png))
    WebDriverWait(page, 30).until(lambda d: prompt.get_attribute("value") == "a lighthouse at dawn, oil painting")
    assert "Settings read from the image" in panel.text
