"""Driving the app's page in headless Chromium: shared by the browser tests and docs/take_screenshots.py."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Iterator

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--window-size=1400,1000")


def browser_available() -> bool:
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


@contextlib.contextmanager
def chromium(languages: str = "en-US,en") -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a throwaway profile, whose user prefers these languages (navigator.languages
    and Accept-Language; headless Chromium ignores --lang)."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in CHROMIUM_ARGS:
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"intl.accept_languages": languages})
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options.add_argument(f"--user-data-dir={profile}")
        browser = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
        try:
            yield browser
        finally:
            browser.quit()


def open_page(driver, url: str):
    driver.get(url)
    WebDriverWait(driver, 30).until(lambda d: visible_panel(d) is not None)
    return driver


def visible_panel(driver):
    """The tab panel now shown, or None while the page is still rendering."""
    panels = [panel for panel in driver.find_elements(By.CSS_SELECTOR, "[role=tabpanel]") if panel.is_displayed()]
    return panels[0] if len(panels) == 1 else None


def open_tab(driver, name: str, showing: str):
    """Click a tab; its panel once it shows this text."""
    shown = driver.find_elements(By.XPATH, f"//button[@role='tab'][normalize-space()='{name}']")
    if shown:
        shown[0].click()
    else:  # past the page's width, Gradio lists the last tabs under "More tabs"
        driver.find_element(By.CSS_SELECTOR, ".overflow-menu button[aria-label='More tabs']").click()
        driver.find_element(By.XPATH, f"//*[contains(@class,'overflow-dropdown')]//button[normalize-space()='{name}']"
                            ).click()
    return WebDriverWait(driver, 10).until(
        lambda d: (panel := visible_panel(d)) is not None and showing in panel.text and panel)


def button(panel, text: str):
    return panel.find_element(By.XPATH, f".//button[normalize-space()='{text}']")


def set_number(panel, label: str, value: int) -> None:
    """Type into the number box of the slider or number field with this label."""
    field = panel.find_element(By.CSS_SELECTOR, f"input[aria-label='number input for {label}']")
    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(str(value), Keys.TAB)


def gallery_images(panel, label: str, first: int | None = None) -> list:
    """The gallery's images (or its first few) once the browser has decoded them, else an empty list.

    Gradio's gallery loads its images lazily, so in a long gallery (the History tab's) the ones
    below the fold never decode: wait on the `first` ones only there.
    """
    block = panel.find_element(
        By.XPATH, f".//div[contains(@class,'block')][.//label[@data-testid='block-label'][normalize-space()='{label}']]")
    images = block.find_elements(By.TAG_NAME, "img")[:first]
    loaded = panel.parent.execute_script("return arguments[0].every(i => i.complete && i.naturalWidth > 0)", images)
    return images if loaded else []


def report_text(panel) -> str:
    return panel.find_element(By.CSS_SELECTOR, "[data-testid=markdown]").text


def choose_option(driver, panel, label: str, name: str) -> None:
    """Open the dropdown with this label until `name` is listed (a tab change refreshes model lists), pick it."""
    dropdown = panel.find_element(By.CSS_SELECTOR, f"input[aria-label='{label}']")

    def listed(d):
        dropdown.click()
        options = d.find_elements(By.XPATH, f"//li[@role='option'][@aria-label='{name}']")
        if not options:
            dropdown.send_keys(Keys.ESCAPE)
        return options

    WebDriverWait(driver, 20, poll_frequency=0.5).until(listed)[0].click()
    WebDriverWait(driver, 5).until(lambda d: dropdown.get_attribute("value") == name)


def field(panel, label: str):
    """The text or number input of the component with this label."""
    return panel.find_element(
        By.XPATH, f".//label[.//*[normalize-space()='{label}']]//*[self::textarea or self::input]")


def replace_text(element, text: str) -> None:
    element.send_keys(Keys.CONTROL, "a")
    element.send_keys(text, Keys.TAB)


def wait_for_job_end(driver, panel, name: str, timeout: float) -> None:
    """Wait until the jobs panel shows `name` ended, and fail with what it shows unless it finished: a failed
    job says so at once instead of timing out, and a timeout shows where the job stood."""
    ends = [f"{name}: {state}" for state in ("finished", "failed", "cancelled", "interrupted")]
    try:
        WebDriverWait(driver, timeout).until(lambda d: any(end in panel.text for end in ends))
    except TimeoutException:
        raise AssertionError(f"{name} did not end within {timeout} s; the panel shows:\n{panel.text}") from None
    assert f"{name}: finished" in panel.text, panel.text
