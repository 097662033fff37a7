"""Take the README's screenshots of the app on its bundled models, in headless Chromium.

    python docs/take_screenshots.py

Starts `python app.py` offline on models/, as a fresh checkout runs it, generates on the Unconditional,
DDIM step control, Digits and Colour guidance tabs, and saves docs/screenshots/<tab>.png.
text2img.png and training.png are not retaken here: offline there are no Stable Diffusion weights, and
a training run long enough to show something takes hours on a CPU.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent / "tests"))

from selenium.webdriver.support.ui import WebDriverWait

from browser import (button, chromium, gallery_images, open_page, open_tab, report_text, set_number,
                     visible_panel)
from running_app import running_app

SCREENSHOTS = DOCS / "screenshots"
TIMEOUT = 600


def generate(driver, panel, done) -> None:
    button(panel, "Generate").click()
    WebDriverWait(driver, TIMEOUT, poll_frequency=1).until(done)
    driver.execute_script("window.scrollTo(0, 0)")


def take_screenshots(driver, url: str) -> None:
    panel = visible_panel(open_page(driver, url))
    set_number(panel, "Number of images", 8)
    set_number(panel, "Steps", 1000)
    generate(driver, panel, lambda d: "DDPM steps" in report_text(panel) and gallery_images(panel, "Samples"))
    driver.save_screenshot(str(SCREENSHOTS / "unconditional.png"))

    panel = open_tab(driver, "DDIM step control", "DDIM steps")
    generate(driver, panel, lambda d: "DDIM steps" in report_text(panel)
             and gallery_images(panel, "Predicted clean image x0"))
    driver.save_screenshot(str(SCREENSHOTS / "ddim.png"))

    panel = open_tab(driver, "Digits", "Samples per digit")
    generate(driver, panel, lambda d: "DDIM steps" in report_text(panel)
             and gallery_images(panel, "Individual samples"))
    driver.save_screenshot(str(SCREENSHOTS / "digits.png"))

    panel = open_tab(driver, "Colour guidance", "Target colour")
    generate(driver, panel, lambda d: "Mean distance" in report_text(panel) and gallery_images(panel, "Guided"))
    driver.save_screenshot(str(SCREENSHOTS / "colour_guidance.png"))


def main() -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as data_dir:
        env = {**os.environ, "DS_DATA_DIR": data_dir, "DS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
        with running_app(env, Path(data_dir) / "app.log") as url, chromium() as driver:
            take_screenshots(driver, url)
    print(f"screenshots written to {SCREENSHOTS}")


if __name__ == "__main__":
    main()
