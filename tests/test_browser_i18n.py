"""The page in the browser's language: Chromium set to Chinese sees Chinese on every tab and still generates (its
report in Chinese too); set to English, English. The API is the same whatever the language."""

from __future__ import annotations

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from browser import (CHROMEDRIVER, CHROMIUM, browser_available, button, chromium, gallery_images, open_page,
                     open_tab, report_text, visible_panel)
from diffusion_app.ui.i18n import translate

if not browser_available():
    pytest.skip(f"browser tests need {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)",
                allow_module_level=True)

# Each tab's title and a label only that tab shows, in English.
TABS = {
    "Unconditional": "Number of images",
    "DDIM step control": "DDIM steps",
    "Digits": "Samples per digit",
    "Colour guidance": "Target colour",
    "CLIP guidance": "CLIP weights",
    "Text to image": "Negative prompt",
    "Image to image": "Strength",
    "Inpaint": "Jump length",
    "Forward process": "Noise schedule",
    "Attention maps": "UNet levels",
    "Step by step": "Decode latents at steps",
    "History": "Images, newest first",
    "Training": "Batch size",
    "Models": "Loaded model",
}


def tab_titles(driver) -> list[str]:
    """The titles shown, then those Gradio lists under "More tabs" when the page is too narrow for all."""
    shown = driver.find_elements(By.CSS_SELECTOR, "button[role=tab]")
    more = driver.find_elements(By.CSS_SELECTOR, ".overflow-dropdown button")
    return [tab.text for tab in shown] + [tab.get_attribute("textContent").strip() for tab in more]


def in_language(text: str, language: str | None) -> str:
    return translate(text, language) or text if language else text


def wait_for_tab_titles(driver, language: str | None) -> None:
    WebDriverWait(driver, 10).until(
        lambda d: tab_titles(d)[:len(TABS)] == [in_language(title, language) for title in TABS])


def test_a_browser_asking_for_simplified_chinese_by_script_gets_the_chinese_page(server_url):
    """Gradio itself knows only zh-CN and zh-TW; the page switches a zh-Hans browser to zh-CN."""
    with chromium("zh-Hans") as driver:
        open_page(driver, server_url)
        wait_for_tab_titles(driver, "zh-CN")
        label = in_language("Number of images", "zh-CN")
        WebDriverWait(driver, 10).until(lambda d: label in visible_panel(d).text)


@pytest.mark.parametrize(("browser_languages", "language"), [("zh-CN,zh", "zh-CN"), ("en-US,en", None)])
def test_every_tab_speaks_the_browsers_language(server_url, browser_languages, language):
    with chromium(browser_languages) as driver:
        open_page(driver, server_url)
        wait_for_tab_titles(driver, language)
        for title, label in TABS.items():
            open_tab(driver, in_language(title, language), in_language(label, language))
            if language:  # the examples' column headers come with the page's load event
                WebDriverWait(driver, 10).until(lambda d: label not in visible_panel(d).text,
                                                f"{title}: {label!r} is still in English")
        # Options are translated too; the chosen one stays chosen (its value is the API's, in English).
        panel = open_tab(driver, in_language("Training", language), in_language("From scratch", language))
        chosen = panel.find_element(By.XPATH, ".//label[.//input[@type='radio'][@checked or @aria-checked='true']]"
                                              "[normalize-space()='" + in_language("Quick test", language) + "']")
        assert chosen.is_displayed()


@pytest.mark.parametrize(("browser_languages", "report_words"), [
    ("zh-CN,zh", ("种子", "步 DDPM，用时")),
    ("en-US,en", ("Seed", "DDPM steps in")),
])
def test_generating_reports_in_the_browsers_language(server_url, browser_languages, report_words):
    with chromium(browser_languages) as driver:
        open_page(driver, server_url)
        language = "zh-CN" if browser_languages.startswith("zh") else None
        panel = WebDriverWait(driver, 10).until(
            lambda d: in_language("Number of images", language) in visible_panel(d).text and visible_panel(d))
        button(panel, in_language("Generate", language)).click()
        WebDriverWait(driver, 60).until(lambda d: all(word in report_text(panel) for word in report_words))
        assert WebDriverWait(driver, 10).until(lambda d: gallery_images(panel, in_language("Samples", language)))


def test_the_api_is_the_same_in_every_language(server_url):
    described = [httpx.get(f"{server_url}gradio_api/info", headers={"Accept-Language": languages},
                           cookies={"ds_language": languages.split(",")[0]}, timeout=30).json()
                 for languages in ("zh-CN,zh", "en-US,en")]
    chinese, english = ({name: [parameter["parameter_name"] for parameter in endpoint["parameters"]]
                         for name, endpoint in info["named_endpoints"].items()} for info in described)
    assert chinese == english
    assert "/generate_unconditional" in english and "seed_value" in english["/generate_unconditional"]
