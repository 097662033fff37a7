"""Take the README's screenshots of the app on its bundled models, in headless Chromium.

    python docs/take_screenshots.py                  # every tab
    python docs/take_screenshots.py step-by-step     # only these tabs: attention-maps, step-by-step, inpaint

Starts `python app.py` offline on models/, as a fresh checkout runs it, generates on every generation tab
(Text to image on the bundled emoji-t2i), noises a red disc on the Forward process tab, inpaints the grinning
face's mouth, maps the attention of "red apple", then shows the History and Models tabs, and saves
docs/screenshots/<tab>.png; and the Unconditional tab once more in a Chinese browser (unconditional_zh.png; Chromium needs a CJK font for it, e.g. Debian's fonts-noto-cjk).
training.png is not retaken here: a training run long enough to show something takes hours on a CPU.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent / "tests"))

from PIL import Image, ImageDraw
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from browser import (button, chromium, field, gallery_images, open_page, open_tab, replace_text, report_text, set_number,
                     visible_panel)
from running_app import running_app

SCREENSHOTS = DOCS / "screenshots"
TIMEOUT = 600


def generate(driver, panel, done) -> None:
    button(panel, "Generate").click()
    WebDriverWait(driver, TIMEOUT, poll_frequency=1).until(done)
    driver.execute_script("window.scrollTo(0, 0)")


def take_screenshots(driver, url: str, picture: Path) -> None:
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

    panel = open_tab(driver, "CLIP guidance", "CLIP weights")
    replace_text(panel.find_element(By.XPATH, ".//label[.//*[normalize-space()='Prompt']]//textarea"), "red heart")
    generate(driver, panel, lambda d: "cutouts ·" in panel.text
             and gallery_images(panel, "Samples (previews show the predicted clean images)"))
    driver.save_screenshot(str(SCREENSHOTS / "clip_guidance.png"))

    panel = open_tab(driver, "Text to image", "Negative prompt")
    replace_text(panel.find_element(By.XPATH, ".//label[.//*[normalize-space()='Prompt']]//textarea"), "grinning face")
    set_number(panel, "Number of images", 4)
    generate(driver, panel, lambda d: "DPM++ 2M steps," in panel.text and gallery_images(panel, "Images"))
    driver.save_screenshot(str(SCREENSHOTS / "text2img.png"))

    panel = open_tab(driver, "Image to image", "Strength")
    panel.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(picture))
    generate(driver, panel, lambda d: "strength 0.6" in panel.text and gallery_images(panel, "Results"))
    driver.save_screenshot(str(SCREENSHOTS / "image_to_image.png"))

    panel = open_tab(driver, "Forward process", "Noise schedule")
    panel.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(picture))
    button(panel, "Noise it").click()
    WebDriverWait(driver, TIMEOUT).until(lambda d: len(gallery_images(panel, "x_t")) == 7)
    driver.save_screenshot(str(SCREENSHOTS / "forward_process.png"))

    take_inpaint_screenshot(driver)
    take_attention_maps_screenshot(driver)
    take_step_by_step_screenshot(driver)

    panel = open_tab(driver, "History", "Images, newest first")
    WebDriverWait(driver, TIMEOUT).until(lambda d: gallery_images(panel, "Images, newest first", first=4))
    driver.save_screenshot(str(SCREENSHOTS / "history.png"))

    open_tab(driver, "Models", "Loaded model")
    driver.save_screenshot(str(SCREENSHOTS / "models.png"))


def take_attention_maps_screenshot(driver) -> None:
    """"red apple", seed 6, on emoji-t2i: an apple (most seeds draw a heart), the apple's finest-level map on it."""
    panel = open_tab(driver, "Attention maps", "UNet levels")
    panel.find_element(By.XPATH, ".//label[.//*[normalize-space()='Random seed']]//input").click()
    replace_text(field(panel, "Seed"), "6")
    generate(driver, panel, lambda d: "attention read at" in panel.text and gallery_images(panel, "Attention per token"))
    driver.save_screenshot(str(SCREENSHOTS / "attention_maps.png"))


def take_step_by_step_screenshot(driver) -> None:
    """"red apple", seed 6, 20 steps on emoji-t2i, its latents decoded at steps 2, 5, 10 and 15."""
    panel = open_tab(driver, "Step by step", "Decode latents at steps")
    panel.find_element(By.XPATH, ".//label[.//*[normalize-space()='Random seed']]//input").click()
    replace_text(field(panel, "Seed"), "6")
    replace_text(field(panel, "Decode latents at steps"), "2, 5, 10, 15")
    generate(driver, panel, lambda d: "5. Decode" in panel.text and gallery_images(panel, "Latents decoded along the way"))
    driver.save_screenshot(str(SCREENSHOTS / "step_by_step.png"))


def take_inpaint_screenshot(driver) -> None:
    """The grinning face's mouth painted over with the mouse and redrawn by openmoji with RePaint, seed 3."""
    panel = open_tab(driver, "Inpaint", "Jump length")
    brush = WebDriverWait(driver, 30).until(lambda d: panel.find_elements(By.CSS_SELECTOR, "button[aria-label='Brush']"))
    brush[0].click()
    canvas = panel.find_elements(By.TAG_NAME, "canvas")[-1]
    stroke = ActionChains(driver).move_to_element_with_offset(canvas, -70, 55).click_and_hold()
    for _ in range(7):
        stroke = stroke.move_by_offset(20, 0)
    stroke.release().perform()
    panel.find_element(By.XPATH, ".//label[.//*[normalize-space()='Random seed']]//input").click()
    replace_text(field(panel, "Seed"), "3")
    generate(driver, panel, lambda d: "model steps in" in panel.text and gallery_images(panel, "Results"))
    driver.save_screenshot(str(SCREENSHOTS / "inpaint.png"))


ONE_TAB_SCREENSHOTS = {"attention-maps": take_attention_maps_screenshot, "step-by-step": take_step_by_step_screenshot,
                       "inpaint": take_inpaint_screenshot}


def take_chinese_screenshot(url: str) -> None:
    with chromium("zh-CN,zh") as driver:
        panel = visible_panel(open_page(driver, url))
        WebDriverWait(driver, 30).until(lambda d: "图像数量" in panel.text)
        set_number(panel, "图像数量", 8)
        button(panel, "生成").click()
        WebDriverWait(driver, TIMEOUT, poll_frequency=1).until(lambda d: "步 DDPM，用时" in report_text(panel)
                                                               and gallery_images(panel, "样本"))
        driver.execute_script("window.scrollTo(0, 0)")
        driver.save_screenshot(str(SCREENSHOTS / "unconditional_zh.png"))


def red_disc(folder: Path) -> Path:
    """A red disc on white, the picture the Image to image and Forward process screenshots start from."""
    path = folder / "red_disc.png"
    image = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(image).ellipse((10, 10, 54, 54), fill=(220, 40, 40), outline=(40, 20, 20), width=3)
    image.save(path)
    return path


def main() -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as data_dir:
        env = {**os.environ, "DS_DATA_DIR": data_dir, "DS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
        with running_app(env, Path(data_dir) / "app.log") as url:
            with chromium() as driver:
                if sys.argv[1:]:
                    open_page(driver, url)
                    for tab in sys.argv[1:]:
                        ONE_TAB_SCREENSHOTS[tab](driver)
                else:
                    take_screenshots(driver, url, red_disc(Path(data_dir)))
            if not sys.argv[1:]:
                take_chinese_screenshot(url)
    print(f"screenshots written to {SCREENSHOTS}")


if __name__ == "__main__":
    main()
