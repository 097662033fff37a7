"""The real page in headless Chromium: click Generate, wait for images, check what a download gets."""

from __future__ import annotations

import io
import re

import httpx
import pytest
from PIL import Image
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from browser import (CHROMEDRIVER, CHROMIUM, browser_available, button, choose_option, chromium, field,
                     gallery_images, open_page, open_tab, replace_text, report_text, set_number, visible_panel)
from diffusion_app.hardware import CPU_FIRST_CLICK
from diffusion_app.tiny_sd import CLIP_CONTEXT_LENGTH
from conftest import TINY_SD_MODEL

if not browser_available():
    pytest.skip(f"browser tests need {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)",
                allow_module_level=True)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GENERATION_TIMEOUT = 60


@pytest.fixture(scope="module")
def driver():
    with chromium() as browser:
        yield browser


@pytest.fixture
def page(driver, server_url):
    return open_page(driver, server_url)


def test_unconditional_generate_serves_png_with_parameters(page):
    panel = visible_panel(page)
    set_number(panel, "Steps", 20)
    WebDriverWait(page, 5).until(
        lambda d: panel.find_element(By.CSS_SELECTOR, "input[aria-label='range slider for Steps']")
        .get_attribute("value") == "20")

    button(panel, "Generate").click()
    WebDriverWait(page, GENERATION_TIMEOUT).until(lambda d: "DDPM steps" in report_text(panel))
    images = WebDriverWait(page, 10).until(lambda d: gallery_images(panel, "Samples"))

    source = images[0].get_attribute("src")
    assert source.startswith(page.current_url.rstrip("/")), source
    response = httpx.get(source, timeout=10)
    response.raise_for_status()
    assert response.content.startswith(PNG_SIGNATURE)
    parameters = Image.open(io.BytesIO(response.content)).info.get("parameters", "")
    assert "Seed:" in parameters and "Steps: 20" in parameters, parameters

    # Show the code: the script of the first image, then of the image clicked (its seed is one more).
    seed = int(re.search(r"Seed: (\d+)", parameters).group(1))
    panel.find_element(By.XPATH, ".//button[.//*[normalize-space()='Show the code']]").click()
    code = WebDriverWait(page, 10).until(lambda d: panel.find_element(By.CSS_SELECTOR, ".cm-content"))
    WebDriverWait(page, 10).until(lambda d: f"SEED = {seed}" in code.text)
    assert "UNet2DModel.from_pretrained(MODEL" in code.text and "STEPS = 20" in code.text
    assert button(panel, "Download the script").is_displayed()
    images[1].click()
    WebDriverWait(page, 10).until(lambda d: f"SEED = {seed + 1}" in panel.find_element(By.CSS_SELECTOR,
                                                                                      ".cm-content").text)


def test_ddim_tab_streams_both_galleries(page):
    panel = open_tab(page, "DDIM step control", "DDIM steps")

    button(panel, "Generate").click()
    WebDriverWait(page, GENERATION_TIMEOUT).until(
        lambda d: "DDIM steps" in report_text(panel)
        and gallery_images(panel, "x_t: the current noisy sample")
        and gallery_images(panel, "Predicted clean image x0"))


def test_digits_tab_draws_the_chosen_digits_with_the_cfg_scale_set(page):
    panel = open_tab(page, "Digits", "CFG scale")
    set_number(panel, "Steps", 4)
    set_number(panel, "CFG scale", 2)
    button(panel, "Generate").click()
    WebDriverWait(page, GENERATION_TIMEOUT).until(lambda d: "CFG scale 2" in report_text(panel))
    images = WebDriverWait(page, 10).until(lambda d: gallery_images(panel, "Individual samples"))
    assert len(images) == 10 * CPU_FIRST_CLICK.samples_per_digit  # every digit is chosen at first
    response = httpx.get(images[-1].get_attribute("src"), timeout=10)
    response.raise_for_status()
    parameters = Image.open(io.BytesIO(response.content)).info.get("parameters", "")
    assert "Class: 9" in parameters and "Steps: 4" in parameters and "CFG scale: 2" in parameters, parameters


def test_colour_guidance_tab_shows_unguided_and_guided_with_the_loss_plot(page):
    panel = open_tab(page, "Colour guidance", "Target colour")
    set_number(panel, "Steps", 12)

    button(panel, "Generate").click()
    WebDriverWait(page, GENERATION_TIMEOUT).until(
        lambda d: "Mean distance" in report_text(panel)
        and gallery_images(panel, "Guided") and gallery_images(panel, "Unguided (same seed)"))
    plot = panel.find_element(By.CSS_SELECTOR, ".loss-plot")
    WebDriverWait(page, 10).until(lambda d: plot.find_elements(By.CSS_SELECTOR, "svg")
                                  and {"guided", "unguided"} <= set(plot.text.split("\n")))  # both legend entries
    assert "12 DDIM steps" in report_text(panel)

    source = gallery_images(panel, "Guided")[0].get_attribute("src")
    response = httpx.get(source, timeout=10)
    response.raise_for_status()
    parameters = Image.open(io.BytesIO(response.content)).info.get("parameters", "")
    assert "Guidance: colour" in parameters and "Colour: #e8702a" in parameters, parameters
    compared = WebDriverWait(page, 20).until(
        lambda d: gallery_images(panel, "Unguided and guided (the first image of each)"))
    halves = [httpx.get(image.get_attribute("src"), timeout=10).content for image in compared]
    assert len(halves) == 2 and halves[1] == response.content  # unguided, then the first guided image


def test_clip_guidance_compares_unguided_and_guided_on_a_slider(page, tiny_clip):
    panel = open_tab(page, "CLIP guidance", "CLIP weights")
    choose_option(page, panel, "CLIP model", tiny_clip[0].stem)  # the tiny CLIP of DS_CLIP_CONFIGS, offline
    weights, checkpoint, kept = field(panel, "CLIP weights"), str(tiny_clip[1]), []

    def typed_and_kept(_):
        """The weights typed in, once the choice's suggestion ("openai", which may come after) no longer resets them."""
        if weights.get_attribute("value") != checkpoint:
            replace_text(weights, checkpoint)
            kept.clear()
        kept.append(True)
        return len(kept) >= 3

    WebDriverWait(page, 20, poll_frequency=0.5).until(typed_and_kept)
    set_number(panel, "Steps", 4)
    field(panel, "Unguided vs guided").click()
    button(panel, "Generate").click()
    WebDriverWait(page, GENERATION_TIMEOUT).until(
        lambda d: "unguided in" in panel.text and gallery_images(panel, "Unguided (same seed)"))
    first = {label: httpx.get(gallery_images(panel, label)[0].get_attribute("src"), timeout=10).content
             for label in ("Unguided (same seed)", "Samples (previews show the predicted clean images)")}
    compared = WebDriverWait(page, 20).until(
        lambda d: gallery_images(panel, "Unguided and guided (the first image of each)"))
    halves = [httpx.get(image.get_attribute("src"), timeout=10).content for image in compared]
    assert halves == list(first.values())  # unguided, then the first guided image


def test_text2img_generates_and_reads_its_parameters_back(page, tmp_path):
    panel = open_tab(page, "Text to image", "CFG scale")
    prompt = panel.find_element(By.CSS_SELECTOR, "textarea[placeholder^='e.g. a watercolor']")
    assert prompt.get_attribute("value") == "red heart"  # prefilled with what the bundled model knows
    replace_text(prompt, "a lighthouse at dawn, oil painting")
    for label, value in (("Steps", 6), ("Width", 64), ("Height", 64)):
        set_number(panel, label, value)

    button(panel, "Generate").click()
    WebDriverWait(page, GENERATION_TIMEOUT).until(lambda d: "6 DPM++ 2M steps" in panel.text)
    images = WebDriverWait(page, 10).until(lambda d: gallery_images(panel, "Images"))
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


def test_text2img_fast_sets_up_the_models_lcm_lora_and_tiny_decoder_and_previews_every_step(page):
    panel = open_tab(page, "Text to image", "CFG scale")
    button(panel, "Fast: LCM-LoRA, 4 steps").click()
    WebDriverWait(page, 30).until(lambda d: "tiny-sd-lcm is an LCM-LoRA" in panel.text)

    def number(label):
        return panel.find_element(By.CSS_SELECTOR, f"input[aria-label='number input for {label}']").get_attribute("value")

    assert (number("Steps"), number("CFG scale"), number("LoRA weight")) == ("4", "1", "1")
    assert number("Preview every k steps") == "1" and "through the tiny decoder tiny-sd-taesd" in panel.text
    for label, value in (("Width", 64), ("Height", 64), ("Steps", 12)):
        set_number(panel, label, value)
    # Count the pictures the gallery shows while it runs: a preview per step, then the image.
    page.execute_script("""
        const block = arguments[0];
        window.shownPictures = new Set();
        new MutationObserver(() => block.querySelectorAll('img').forEach(i => window.shownPictures.add(i.src)))
            .observe(block, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
    """, panel.find_element(By.XPATH, ".//div[contains(@class,'block')][.//label[@data-testid='block-label']"
                                      "[normalize-space()='Images']]"))
    button(panel, "Generate").click()
    WebDriverWait(page, GENERATION_TIMEOUT).until(lambda d: "12 LCM steps, CFG scale 1" in panel.text)
    assert "LoRA tiny-sd-lcm at 1, decoded by tiny-sd-taesd" in panel.text
    assert page.execute_script("return window.shownPictures.size") >= 6  # of 11 previews and the image


def test_image_to_image_fast_redraws_with_the_lcm_lora_and_the_tiny_decoder(page, tmp_path):
    Image.new("RGB", (64, 64), "red").save(tmp_path / "red.png")  # the size tiny-sd draws at
    panel = open_tab(page, "Image to image", "Strength")
    choose_option(page, panel, "Model", "tiny-sd")
    panel.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(tmp_path / "red.png"))
    button(panel, "Fast: LCM-LoRA, 4 steps").click()
    WebDriverWait(page, 30).until(lambda d: "tiny-sd-lcm is an LCM-LoRA" in panel.text)
    for label, value in (("Steps", 8), ("Number of images", 1)):
        set_number(panel, label, value)
    button(panel, "Generate").click()
    WebDriverWait(page, GENERATION_TIMEOUT).until(lambda d: "strength 0.6 in" in panel.text)
    result = WebDriverWait(page, 10).until(lambda d: gallery_images(panel, "Results"))[0]
    parameters = Image.open(io.BytesIO(httpx.get(result.get_attribute("src"), timeout=30).content)).info["parameters"]
    assert "Sampler: LCM" in parameters and "LoRA: tiny-sd-lcm" in parameters and "VAE: tiny-sd-taesd" in parameters


def test_attention_maps_tab_shows_a_map_per_word_and_redraws_for_the_chosen_tokens(page):
    panel = open_tab(page, "Attention maps", "UNet levels")
    set_number(panel, "Steps", 4)
    button(panel, "Generate").click()
    WebDriverWait(page, GENERATION_TIMEOUT).until(lambda d: "attention read at steps 1-4" in panel.text)
    maps = WebDriverWait(page, 10).until(lambda d: gallery_images(panel, "Attention per token"))
    assert len(maps) == 2 and "1: red" in panel.text and "2: apple" in panel.text  # the words, not start or end
    assert "padding tokens fill the prompt" in panel.text and re.search(r"Seed \d+ · 4 DPM", panel.text)
    levels = [label.find_element(By.TAG_NAME, "input") for label in panel.find_elements(By.TAG_NAME, "label")
              if re.fullmatch(r"\d+x\d+", label.text.strip())]  # the UNet levels' tick boxes, "16x16"
    assert levels and levels[0].is_selected()  # the finest level, chosen for the learner

    panel.find_element(By.CSS_SELECTOR, "input[aria-label='Tokens']").click()
    page.find_element(By.XPATH, "//li[@role='option'][@aria-label='0: <|startoftext|>']").click()
    WebDriverWait(page, 20).until(lambda d: len(gallery_images(panel, "Attention per token")) == 3)
    levels[0].click()  # no level left: a message, and the maps stay
    WebDriverWait(page, 20).until(lambda d: "Choose at least one UNet level" in d.page_source)
    assert len(gallery_images(panel, "Attention per token")) == 3


def test_step_by_step_tab_shows_each_stage_and_the_latents_along_the_way(page):
    panel = open_tab(page, "Step by step", "Decode latents at steps")
    set_number(panel, "Steps", 4)
    replace_text(field(panel, "Decode latents at steps"), "2, 4")
    button(panel, "Generate").click()
    WebDriverWait(page, GENERATION_TIMEOUT).until(lambda d: "4. Denoise: 4 steps of DPM++ 2M" in panel.text)
    decoded = WebDriverWait(page, 10).until(lambda d: gallery_images(panel, "Latents decoded along the way"))
    assert len(decoded) == 2 and "Step 2" in panel.text
    assert "apple</w>" in panel.text and "padding × 73" in panel.text  # the tokens, padding folded into a row
    assert panel.find_elements(By.CSS_SELECTOR, ".vega-embed")  # the chart of the noise predictions drew
    seed = re.search(r"Seed (\d+) · 4 DPM\+\+ 2M steps, CFG scale 7.5", panel.text).group(1)

    # Show the code: the pipeline call that makes the same image.
    panel.find_element(By.XPATH, ".//button[.//*[normalize-space()='Show the code']]").click()
    WebDriverWait(page, 10).until(lambda d: any(f"manual_seed({seed})" in code.text
                                                for code in panel.find_elements(By.CSS_SELECTOR, ".cm-content")))

    replace_text(field(panel, "Decode latents at steps"), "9")  # past the run: a message, the page keeps its results
    button(panel, "Generate").click()
    WebDriverWait(page, GENERATION_TIMEOUT).until(lambda d: "Steps to decode must be from 1 to 4" in d.page_source)
    assert len(gallery_images(panel, "Latents decoded along the way")) == 2


def test_the_token_counter_counts_what_the_models_tokenizer_counts_as_it_is_typed(page, models_dir):
    from transformers import CLIPTokenizer

    tokenizer = CLIPTokenizer.from_pretrained(models_dir / TINY_SD_MODEL / "tokenizer")
    panel = open_tab(page, "Text to image", "Negative prompt")
    prompts = {"a red apple": "a red apple", "🍎🍏 apples and ❤️ hearts": "🍎🍏 apples and ❤️ hearts",
               "一只红色的苹果": "一只红色的苹果",
               "antidisestablishmentarianism supercalifragilisticexpialidocious":
                   "antidisestablishmentarianism supercalifragilisticexpialidocious",
               "a (red:1.3) apple, [[blurry]], \\(1990\\)": "a red apple, blurry, (1990)",  # weights are not words
               "many red apples " * 30: "many red apples " * 30}
    for prompt, words in prompts.items():
        replace_text(field(panel, "Prompt"), prompt)
        used = len(tokenizer(words).input_ids)
        WebDriverWait(page, 20).until(lambda d: f"{used}/{CLIP_CONTEXT_LENGTH} tokens" in panel.text,
                                      f"{prompt!r}: expected {used} tokens, the page shows {panel.text[:300]!r}")
    assert used > CLIP_CONTEXT_LENGTH and (f"encoded in 2 chunks, or the last {used - CLIP_CONTEXT_LENGTH} cut"
                                           in panel.text)
    # Generating says so too; ticked, the box cuts the prompt instead.
    button(panel, "Generate").click()
    WebDriverWait(page, GENERATION_TIMEOUT).until(lambda d: "encoded in 2 chunks." in panel.text)
    field(panel, "Cut long prompts at the context").click()
    button(panel, "Generate").click()
    WebDriverWait(page, GENERATION_TIMEOUT).until(lambda d: "Prompt truncated" in panel.text)
