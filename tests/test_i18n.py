"""The interface in Simplified Chinese: every text of every tab has a translation, handlers' reports follow the
visitor's language, and nothing an API client or another UI reads changes with it."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from gradio.context import LocalContext

from diffusion_app.service.jobs.manager import open_jobs
from diffusion_app.service.generation.sampling import SamplingRequest
from diffusion_app.service.studio import Studio
from diffusion_app.ui import build_app
from diffusion_app.ui.i18n import (LANGUAGE_COOKIE, language_of, page_translations, static_texts, tr, translate,
                                   translated_choosers)

UI_FOLDER = Path(__file__).resolve().parent.parent / "diffusion_app" / "ui"
# Each page variant shows texts the others do not (the login form, the public server's notes, switched-off training).
PAGE_VARIANTS = {
    "default": {},
    "public": {"public": True},
    "training login": {"training_auth": (("teacher", "secret"),)},
    "training off": {"training_enabled": False},
}


def built_page(settings, **changes):
    studio = Studio(replace(settings, **changes))
    return build_app(studio, open_jobs(studio) if studio.settings.training_enabled else None)


@pytest.mark.parametrize("variant", PAGE_VARIANTS)
def test_every_text_of_every_tab_has_a_chinese_entry(settings, variant):
    page = built_page(settings, **PAGE_VARIANTS[variant])
    texts = {text for _, _, text in static_texts(page)}
    assert len(texts) > 100
    choices = {display for chooser in translated_choosers(page) for display, _ in chooser.choices}
    assert {"Quick test", "From scratch", "All tabs", "Seed"} <= choices or variant == "training off"
    texts |= choices  # a list of options is translated whole, or not at all (scheduler and model names)
    missing = sorted(text for text in texts if translate(text, "zh-CN") is None)
    assert not missing, f"add these to diffusion_app/ui/locales/zh-CN.toml: {missing}"


def test_page_translations_mark_every_static_text_and_carry_its_chinese(settings):
    page = built_page(settings)
    english = {text for _, _, text in static_texts(page)}
    i18n = page_translations(page)
    assert not list(static_texts(page)), "every static text is a translation key now"
    table = i18n.translations_dict["zh-CN"]
    assert set(table) == english
    assert table["Generate"] == "生成" and table["Steps"] == "步数" and table["Text to image"] == "文生图"
    markers = {str(getattr(block, "label", "")) for block in page.blocks.values()}
    assert '__i18n__{"__type__": "translation_metadata", "key": "Number of images"}' in markers


def report_samples():
    """Each text a handler passes to tr() as a literal or f-string, with a stand-in value for every field."""
    for path in sorted(UI_FOLDER.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "tr":
                argument = node.args[0]
                for branch in (argument.body, argument.orelse) if isinstance(argument, ast.IfExp) else (argument,):
                    if isinstance(branch, ast.Constant):
                        yield path.name, branch.value
                    elif isinstance(branch, ast.JoinedStr):
                        yield path.name, "".join(part.value if isinstance(part, ast.Constant) else "7"
                                                 for part in branch.values)


def test_every_report_a_handler_translates_is_in_the_catalogue():
    samples = list(report_samples())
    assert len(samples) > 60
    missing = [(file, text) for file, text in samples if translate(text, "zh-CN") is None]
    assert not missing, f"add templates to diffusion_app/ui/locales/zh-CN.toml for: {missing}"


def test_templates_fill_in_values_and_translate_what_they_matched():
    assert translate("Step 3/20 · 1.5 s", "zh-CN") == "第 3/20 步 · 1.5 秒"
    # the captured label and the nested timing are translated in turn
    assert translate("Steps must be a whole number from 1 to 1000, got 0.", "zh-CN") == \
        "步数 必须是 1 到 1000 之间的整数，收到的是 0。"
    assert translate("guided: step 2/10", "zh-CN") == "有引导：第 2/10 步"
    # the most specific template wins over one that also matches the end of the text
    report = ("Seed 1 · 10 DDIM steps · guidance scale 3 (fast) · guided in 1.0 s (100 ms/step), unguided in 0.5 s "
              "(50 ms/step)")
    assert translate(report, "zh-CN") == (
        "种子 1 · 10 步 DDIM · 引导强度 3（快速）· 有引导用时 1.0 秒（每步 100 毫秒），无引导用时 0.5 秒（每步 50 毫秒）")
    assert translate("something the catalogue never heard of", "zh-CN") is None
    assert translate("Generate", None) is None  # English: the text as it is


def test_service_errors_reach_a_chinese_visitor_in_chinese():
    with pytest.raises(ValueError) as caught:
        SamplingRequest(model="m", num_images=1, steps=10, eta=2).validated(8)
    assert translate(str(caught.value), "zh-CN") == "Eta 必须是 0（确定性）到 1 之间的数字，收到的是 2。"


@pytest.mark.parametrize(("tag", "language"), [
    ("zh-CN", "zh-CN"), ("zh", "zh-CN"), ("zh-Hans", "zh-CN"), ("zh-Hans-CN", "zh-CN"), ("zh-cn", "zh-CN"),
    ("zh-TW", None), ("zh-Hant", None), ("en-US", None), ("en", None), ("fr", None), ("", None), (None, None),
])
def test_language_of_a_browser_tag(tag, language):
    assert language_of(tag) == language


def handled(request) -> str:
    """tr() as a handler running for this request sees it."""
    token = LocalContext.request.set(request)
    try:
        return tr("Loading model")
    finally:
        LocalContext.request.reset(token)


def test_tr_follows_the_page_cookie_then_the_browser_language():
    assert tr("Loading model") == "Loading model"  # outside a request
    chinese_browser = {"accept-language": "zh-CN,zh;q=0.9,en;q=0.8"}
    assert handled(SimpleNamespace(cookies={}, headers=chinese_browser)) == "正在加载模型"
    # The page's cookie says which language it shows (a visitor may pick English in Gradio's settings).
    assert handled(SimpleNamespace(cookies={LANGUAGE_COOKIE: "en"}, headers=chinese_browser)) == "Loading model"
    assert handled(SimpleNamespace(cookies={LANGUAGE_COOKIE: "zh-CN"}, headers={})) == "正在加载模型"
    # API clients send neither: English.
    assert handled(SimpleNamespace(cookies={}, headers={})) == "Loading model"


def test_the_api_description_does_not_change_with_the_translation(settings):
    page = built_page(settings)
    before = page.get_api_info()
    page_translations(page)
    after = page.get_api_info()
    assert after == before  # endpoint and parameter names, and the English labels that clients and MCP tools read
    parameters = after["named_endpoints"]["/generate_unconditional"]["parameters"]
    assert [p["label"] for p in parameters][:3] == ["Model", "Number of images", "Steps"]
