"""What a new user trips over, checked in headless Chromium as they meet it: small images shown whole at a
whole-number zoom, the colour picker opening on its colour, sweep axes named as their controls, the API page
explaining the history id, no true/false in any table, and the Chinese page with nothing left in English."""

from __future__ import annotations

import colorsys
import re

import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from browser import button, choose_option, chromium, gallery_images, open_page, open_tab, set_number
from test_browser import GENERATION_TIMEOUT, driver  # noqa: F401 (driver: the module-scoped browser fixture)
from conftest import TINY_SD_MODEL
from diffusion_app.ui.colour_guidance import DEFAULT_COLOUR

GENERATION_TABS = {"Unconditional": "Number of images", "DDIM step control": "DDIM steps", "Digits": "Samples per digit",
                   "Colour guidance": "Target colour", "CLIP guidance": "CLIP weights", "Text to image": "Negative prompt",
                   "Image to image": "Strength", "Inpaint": "Jump length"}

# Each image's box on the page, its natural size and the zoom the page script gave it.
IMAGE_BOXES = """
const block = arguments[0], outer = block.getBoundingClientRect();
return [...block.querySelectorAll('img')].map(image => {
  const box = image.getBoundingClientRect();
  return {natural: [image.naturalWidth, image.naturalHeight], shown: [box.width, box.height],
          zoom: Number(image.dataset.zoom || 0), inside: box.left >= outer.left - 1 && box.right <= outer.right + 1
          && box.top >= outer.top - 1 && box.bottom <= outer.bottom + 1};
});
"""


@pytest.fixture
def page(driver, server_url):  # noqa: F811
    return open_page(driver, server_url)


@pytest.fixture(scope="module")
def chinese_page(server_url):
    with chromium("zh-CN,zh") as browser:
        yield open_page(browser, server_url)


def labelled_block(panel, label: str):
    return panel.find_element(
        By.XPATH, f".//div[contains(@class,'block')][.//*[@data-testid='block-label'][normalize-space()='{label}']]")


def assert_whole_at_a_zoom(panel, label: str, at_least: int) -> None:
    """Every image of this output is shown whole, each model pixel as zoom x zoom screen pixels."""
    boxes = panel.parent.execute_script(IMAGE_BOXES, labelled_block(panel, label))
    assert boxes, f"{label}: no images"
    for box in boxes:
        assert box["zoom"] >= at_least, f"{label}: {box}"
        assert box["shown"] == pytest.approx([n * box["zoom"] for n in box["natural"]], abs=1), f"{label}: {box}"
        assert box["inside"], f"{label}: the image is cut off: {box}"


def generate(panel, report_words: str) -> None:
    button(panel, "Generate").click()
    WebDriverWait(panel.parent, GENERATION_TIMEOUT).until(lambda d: report_words in panel.text)


def test_small_images_are_shown_whole_at_a_whole_number_zoom(page):
    panel = open_tab(page, "Unconditional", "Number of images")  # tiny-ddpm: 16 px
    set_number(panel, "Steps", 3)
    generate(panel, "DDPM steps")
    WebDriverWait(page, 10).until(lambda d: gallery_images(panel, "Samples"))
    assert_whole_at_a_zoom(panel, "Samples", 4)

    panel = open_tab(page, "Digits", "Samples per digit")  # tiny-digits: 8 px; one digit ticked makes a thin strip
    for digit in "123456789":
        panel.find_element(By.XPATH, f".//label[normalize-space()='{digit}']").click()
    set_number(panel, "Samples per digit", 8)
    set_number(panel, "Steps", 3)
    generate(panel, "DDIM steps")
    WebDriverWait(page, 10).until(lambda d: gallery_images(panel, "Individual samples"))
    assert_whole_at_a_zoom(panel, "Samples (previews show the predicted clean images)", 4)
    assert_whole_at_a_zoom(panel, "Individual samples", 4)  # its last column included

    panel = open_tab(page, "Text to image", "Negative prompt")  # one 64 px image: not stretched over the row
    for label, value in (("Steps", 2), ("Width", 64), ("Height", 64), ("Number of images", 1)):
        set_number(panel, label, value)
    generate(panel, "2 DPM++ 2M steps")
    WebDriverWait(page, 10).until(lambda d: gallery_images(panel, "Images"))
    assert_whole_at_a_zoom(panel, "Images", 2)


def test_the_colour_picker_opens_on_its_colour(page):
    panel = open_tab(page, "Colour guidance", "Target colour")
    labelled = panel.find_element(By.XPATH, ".//div[contains(@class,'block')][.//*[normalize-space()='Target colour']]")
    labelled.find_element(By.CSS_SELECTOR, "button.dialog-button").click()
    red, green, blue = (int(DEFAULT_COLOUR[i:i + 2], 16) / 255 for i in (1, 3, 5))
    expected_hue = colorsys.rgb_to_hsv(red, green, blue)[0] * 360  # orange: about 22 degrees

    def shown_hue(_):
        planes = labelled.find_elements(By.CSS_SELECTOR, ".color-gradient")
        found = planes and re.search(r"--hue:\s*([\d.]+)", planes[0].get_attribute("style") or "")
        return found and float(found.group(1))

    hue = WebDriverWait(page, 5, ignored_exceptions=(StaleElementReferenceException,)).until(lambda d: shown_hue(d) not in (None, False, 0.0) and shown_hue(d),
                                       "the picker opened at hue 0 (red)")
    assert hue == pytest.approx(expected_hue, abs=2)


def sweep_axis_names(page, panel) -> list[str]:
    panel.find_element(By.XPATH, ".//*[normalize-space()='X/Y/Z sweep']").click()
    axis = WebDriverWait(page, 10).until(lambda d: panel.find_element(By.CSS_SELECTOR, "input[aria-label='X axis']"))
    axis.click()
    names = [option.get_attribute("aria-label") for option in
             WebDriverWait(page, 5).until(lambda d: d.find_elements(By.XPATH, "//li[@role='option']"))]
    axis.send_keys(Keys.ESCAPE)
    return [name for name in names if name != "—"]


def test_sweep_axes_are_named_as_their_controls_and_say_a_cell_is_one_image(page):
    for title, showing in GENERATION_TABS.items():
        panel = open_tab(page, title, showing)
        if title == "Image to image":  # its prompt and CFG scale show for Stable Diffusion models only
            choose_option(page, panel, "Model", TINY_SD_MODEL)
            WebDriverWait(page, 10).until(lambda d: "CFG scale" in panel.text)
        labels = {re.sub(r" \(.*\)$", "", element.get_attribute("textContent").strip()) for element in
                  panel.find_elements(By.CSS_SELECTOR, "[data-testid=block-info], [data-testid=block-label], label span")}
        names = sweep_axis_names(page, panel)
        # "Prompt (text-to-image models)" is the Prompt axis
        assert names and set(names) <= labels, f"{title}: axes {set(names) - labels} name no control"
        assert "each cell draws one image" in panel.text, title


def test_the_api_page_explains_the_history_id(page):
    WebDriverWait(page, 10).until(
        lambda d: d.find_elements(By.XPATH, "//button[starts-with(normalize-space(), 'Use via API')]"))[0].click()
    # with the MCP server on, the page opens on MCP: the Python client's snippets are one click away
    WebDriverWait(page, 10).until(lambda d: d.find_elements(By.XPATH, "//*[normalize-space()='Python']"))[0].click()
    WebDriverWait(page, 20).until(lambda d: "visitor_id" in d.find_element(By.TAG_NAME, "body").text)
    text = page.find_element(By.TAG_NAME, "body").text
    assert 'provided in the "History id"' in text and "Leave it out." in text
    assert "parameter_" not in text


def test_tables_show_no_true_or_false(page):
    for title, showing in {**GENERATION_TABS, "Models": "Loaded model"}.items():
        panel = open_tab(page, title, showing)
        cells = {cell.text.strip().lower() for cell in panel.find_elements(By.CSS_SELECTOR, "[role=gridcell], table th")}
        assert not cells & {"true", "false"}, title


def test_history_says_what_it_keeps_and_image_to_image_has_examples(page):
    panel = open_tab(page, "History", "Images, newest first")
    assert "Forward process" in panel.text and "unguided" in panel.text  # what it does not keep, said
    panel = open_tab(page, "Image to image", "Strength")
    assert panel.find_elements(By.XPATH, ".//*[normalize-space()='Examples (bundled models, offline)']")
    assert "0.7" in panel.text and "0.9" in panel.text  # the strength hint: where the input stops showing


def table_headers(panel) -> set[str]:
    return {cell.text.strip() for cell in panel.find_elements(By.CSS_SELECTOR, "table th")} - {""}


def test_the_chinese_page_has_no_english_left(chinese_page):
    page = chinese_page
    panel = open_tab(page, "模型", "已加载")  # the catalog table is refreshed as the tab opens
    WebDriverWait(page, 10).until(lambda d: {"模型", "类型", "来源", "已加载", "内存 (MB)"} <= table_headers(panel),
                                  "the catalog's headers are in English")
    cells = {cell.text.strip() for cell in panel.find_elements(By.CSS_SELECTOR, "[role=gridcell]")}
    assert "无条件" in cells and not cells & {"unconditional", "true", "false"}

    panel = open_tab(page, "训练", "批大小")  # the jobs table, before any job has run and before its first refresh
    headers = table_headers(panel)
    assert "任务" in headers and "Job" not in headers, headers

    panel = open_tab(page, "颜色引导", "目标颜色")
    options = {label.text.strip() for label in panel.find_elements(By.XPATH, ".//label[.//input[@type='radio']]")}
    assert {"快速", "精确"} <= options and not options & {"fast", "exact"}, options  # (Examples show API values)

    panel = open_tab(page, "无条件生成", "图像数量")  # a bad sweep: the toast is titled in Chinese
    panel.find_element(By.XPATH, ".//*[normalize-space()='X/Y/Z 参数扫描']").click()
    WebDriverWait(page, 10).until(lambda d: panel.find_elements(By.CSS_SELECTOR, "input[aria-label='X 轴']"))
    button(panel, "开始扫描").click()
    titles = WebDriverWait(page, 20).until(
        lambda d: [title.text.strip() for title in d.find_elements(By.CSS_SELECTOR, ".toast-title") if title.text.strip()])
    assert titles == ["错误"]
