"""What the generation tabs show while and after they run, in the real page: outputs are not upload targets, the
progress overlay leaves the previews visible, and Stop says where it stopped and keeps the last preview (in
English and in Chinese)."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from browser import button, chromium, gallery_images, open_page, open_tab, report_text, set_number
from diffusion_app.ui.i18n import translate
from test_browser import GENERATION_TIMEOUT, driver  # noqa: F401 (driver: the module-scoped browser fixture)
from test_browser_i18n import TABS

GENERATION_TABS = ("Unconditional", "DDIM step control", "Digits", "Colour guidance", "CLIP guidance",
                   "Text to image", "Image to image", "Forward process", "History")


def block(panel, label: str):
    return panel.find_element(
        By.XPATH, f".//div[contains(@class,'block')][.//label[@data-testid='block-label'][normalize-space()='{label}']]")


def shows_progress(element) -> bool:
    """Whether Gradio's progress overlay is drawn over this block (its status tracker is not hidden)."""
    trackers = element.find_elements(By.CSS_SELECTOR, "[data-testid=status-tracker]")
    return any("hide" not in tracker.get_attribute("class").split() for tracker in trackers)


def test_no_output_asks_for_an_upload(driver, server_url):
    """An interactive gallery invites "Drop Media Here - or - Click to Upload"; an output gallery must not."""
    open_page(driver, server_url)
    for title in GENERATION_TABS:
        panel = open_tab(driver, title, TABS[title])
        assert "Drop Media Here" not in panel.text, title


def test_ddim_previews_stay_visible_while_the_steps_stream(driver, server_url):
    open_page(driver, server_url)
    panel = open_tab(driver, "DDIM step control", "DDIM steps")
    set_number(panel, "DDIM steps", 1000)
    set_number(panel, "Preview every k steps", 10)
    button(panel, "Generate").click()
    WebDriverWait(driver, GENERATION_TIMEOUT).until(
        lambda d: "Step " in report_text(panel) and gallery_images(panel, "Predicted clean image x0"))
    galleries = [block(panel, "x_t: the current noisy sample"), block(panel, "Predicted clean image x0")]
    assert "Step " in report_text(panel)  # still streaming
    assert not any(shows_progress(gallery) for gallery in galleries)
    button(panel, "Stop").click()


@pytest.mark.parametrize("languages", ["en-US,en", "zh-CN,zh"])
def test_stop_says_where_it_stopped_and_keeps_the_last_preview(server_url, languages):
    language = "zh-CN" if languages.startswith("zh") else None

    def text(english: str) -> str:
        return (translate(english, language) if language else None) or english

    with chromium(languages) as browser:
        open_page(browser, server_url)
        panel = open_tab(browser, text("DDIM step control"), text("DDIM steps"))
        set_number(panel, text("DDIM steps"), 1000)
        set_number(panel, text("Preview every k steps"), 100)
        streaming = text("Step {step}/{total} · t = {timestep} · {seconds} s").split("{step}")[0]
        button(panel, text("Generate")).click()
        WebDriverWait(browser, GENERATION_TIMEOUT, poll_frequency=0.1).until(  # click Stop at the first preview
            lambda d: streaming in report_text(panel) and gallery_images(panel, text("Predicted clean image x0")))
        button(panel, text("Stop")).click()
        stopped = text("Stopped at step {step}/{total}; the images shown are its last preview.").split("{step}")[0]
        WebDriverWait(browser, 10).until(lambda d: stopped in report_text(panel))
        step, total = report_text(panel).split(stopped)[1].split("/")[:2]
        assert 0 < int(step) < 1000 and total.startswith("1000")
        assert gallery_images(panel, text("Predicted clean image x0"))
