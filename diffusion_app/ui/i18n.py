"""The interface in the visitor's language: English, or Simplified Chinese for browsers set to Chinese.

The English text is the key, as in gettext: tabs are written in English, and each language's catalogue
(`locales/<language>.toml`) maps English texts to translations: `[[text]]` entries word for word, and
`[[template]]` entries for texts built at run time ("Seed {seed} · {steps} steps"), where a placeholder matches
whatever was formatted there and what it matched is itself translated where the catalogue has it (a nested
message, "guided").

Two places translate, both from the browser's language:
- static texts (labels, info, placeholders, buttons, Markdown, tab and accordion titles) in the browser,
  by Gradio's own `gr.I18n` (`page_translations`, handed to `launch(i18n=...)`);
- texts a handler builds (reports, progress, errors) on the server, by `tr`, in the language of the page that
  sent the request (a cookie the page keeps; else the request's Accept-Language).

API names, parameter names, choices' values and PNG parameters stay English, whatever the language.
"""

from __future__ import annotations

import json
import re
import string
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import gradio as gr
import pandas as pd
from gradio.context import LocalContext

LOCALES = Path(__file__).parent / "locales"

TEXT_PROPERTIES = ("label", "info", "placeholder")  # what Gradio's front end translates on every component
TEXT_VALUED = (gr.Markdown, gr.Button)  # components whose value is text the front end translates too
LANGUAGE_COOKIE = "ds_language"
KEY_MARKER = "__i18n__"  # how Gradio marks a translation key in a text it sends the front end


@dataclass(frozen=True)
class Catalogue:
    texts: dict[str, str]  # English -> translation, word for word
    templates: dict[str, str]  # English with {placeholders} -> translation with the same placeholders


def load_catalogue(path: Path, field: str) -> Catalogue:
    """A language's TOML file: [[text]] and [[template]] entries, each with `en` and the language's `field`."""
    entries = tomllib.loads(path.read_text(encoding="utf-8"))
    return Catalogue({entry["en"]: entry[field] for entry in entries["text"]},
                     {entry["en"]: entry[field] for entry in entries["template"]})


CATALOGUES = {"zh-CN": load_catalogue(LOCALES / "zh-CN.toml", "zh")}

# Runs in the page's <head> (`launch(head=...)`), after Gradio has chosen the page's language and before it
# shows the page. Gradio's front end chooses only among the languages it ships (zh-CN, zh-TW, ...): a browser set
# to "zh" or "zh-Hans" would get English, so switch it to zh-CN with the front end's own `changeLocale`. Then
# keep the page's language in a cookie, which every request carries, so that what the server writes (reports,
# errors) follows the page, a language chosen in Gradio's settings included.
PAGE_LANGUAGE_HEAD = """<script>
(() => {
  const tag = navigator.language || "";
  if (/^zh(-hans)?(-|$)/i.test(tag) && !/^zh-(tw|hk|mo|hant)/i.test(tag) && document.documentElement.lang !== "zh-CN") {
    const core = performance.getEntriesByType("resource").map((entry) => entry.name)
      .find((name) => /\\/assets\\/core-[\\w-]+\\.js$/.test(name));
    if (core) import(core).then((module) => module.changeLocale("zh-CN")).catch(console.warn);
  }
  const remember = () => {
    document.cookie = `%s=${document.documentElement.lang || "en"}; path=/; SameSite=Lax`;
  };
  remember();
  new MutationObserver(remember).observe(document.documentElement, {attributes: true, attributeFilter: ["lang"]});
})();
</script>""" % LANGUAGE_COOKIE


TOAST_TITLES = ("Error", "Warning", "Info", "Success")

# Gradio's toasts are titled with their type, capitalised ("Error"), in English whatever the page's language
# (gr.Error's `title` does not reach the toast in Gradio 6.31): retitle them in the page's language as they appear.
TOAST_TITLES_HEAD = """<script>
(() => {
  const titles = %s;
  const retitle = () => document.querySelectorAll(".toast-title").forEach((title) => {
    const shown = (titles[document.documentElement.lang] || {})[title.textContent.trim()];
    if (shown) title.textContent = shown;
  });
  new MutationObserver(retitle).observe(document.documentElement, {childList: true, subtree: true});
})();
</script>""" % json.dumps({language: {title: catalogue.texts[title] for title in TOAST_TITLES}
                           for language, catalogue in CATALOGUES.items()}, ensure_ascii=False)


def language_of(tag: str | None) -> str | None:
    """The catalogue for a language tag as the page resolves it (zh-CN, zh, zh-Hans: Simplified Chinese), or
    None for English and every language without a catalogue."""
    tag = (tag or "").strip().lower()
    if tag in ("zh", "zh-cn", "zh-sg") or tag.startswith("zh-hans"):
        return "zh-CN"
    return None


def request_language() -> str | None:
    """The language of the page that sent the request being handled: its cookie, else the browser's first
    Accept-Language (None outside a request, for API clients, and for English)."""
    request = LocalContext.request.get(None)
    if request is None:
        return None
    cookies = getattr(request, "cookies", None) or {}
    if LANGUAGE_COOKIE in cookies:
        return language_of(cookies[LANGUAGE_COOKIE])
    headers = getattr(request, "headers", None) or {}
    return language_of((headers.get("accept-language") or "").split(",")[0].split(";")[0])


@lru_cache(maxsize=None)
def compiled_templates(language: str) -> list[tuple[re.Pattern, str]]:
    """The catalogue's templates as anchored patterns, each with its translation, the most specific (longest
    literal text) first: "{seconds} s ({per_step} ms/step)" also matches a whole report that ends that way."""
    templates = []
    for english, translated in CATALOGUES[language].templates.items():
        parts = list(string.Formatter().parse(english))
        pattern = "".join(re.escape(literal) + (f"(?P<{field}>.+?)" if field else "")
                          for literal, field, _, _ in parts)
        literal_length = sum(len(literal) for literal, _, _, _ in parts)
        templates.append((literal_length, re.compile(pattern + r"\Z", re.DOTALL), translated))
    templates.sort(key=lambda template: -template[0])
    return [(pattern, translated) for _, pattern, translated in templates]


def translate(text: str, language: str | None) -> str | None:
    """The text in the language, or None where the catalogue has no entry for it (English is None)."""
    if language is None:
        return None
    texts = CATALOGUES[language].texts
    if text in texts:
        return texts[text]
    for pattern, translated in compiled_templates(language):
        match = pattern.match(text)
        if match:
            values = {name: translate(value, language) or value for name, value in match.groupdict().items()}
            return translated.format(**values)
    return None


def tr(text: str) -> str:
    """A text a handler built, in the language of the browser that asked (unchanged where untranslated)."""
    return translate(text, request_language()) or text


def error(message: str) -> gr.Error:
    """A gr.Error for the visitor who asked, in their language (its toast's title: TOAST_TITLES_HEAD)."""
    return gr.Error(tr(message))


def static_texts(app: gr.Blocks):
    """(component, attribute, text) for every static text of the page that the front end can translate."""
    for block in app.blocks.values():
        names = TEXT_PROPERTIES + (("value",) if isinstance(block, TEXT_VALUED) else ())
        for name in names:
            text = getattr(block, name, None)
            if isinstance(text, str) and text.strip() and KEY_MARKER not in text:
                yield block, name, text


def page_translations(app: gr.Blocks) -> gr.I18n:
    """Mark the page's static texts for translation in the browser; the gr.I18n for `launch(i18n=...)`.

    Each text becomes its own key; a text without a translation shows in English."""
    i18n = gr.I18n()
    translations = {language: {} for language in CATALOGUES}
    for block, name, text in list(static_texts(app)):
        setattr(block, name, str(i18n(text)))
        for language, table in translations.items():
            translated = translate(text, language)
            if translated is not None:
                table[text] = translated
    return gr.I18n(**translations)


def translated_choosers(app: gr.Blocks) -> list:
    """The radios, dropdowns and checkbox groups whose options are words of the interface (at least one of them
    has a translation): their displays get translated, their values (what the API takes) stay."""
    choosers = (gr.Radio, gr.Dropdown, gr.CheckboxGroup)
    return [block for block in app.blocks.values() if isinstance(block, choosers)
            and any(translate(display, language) for display, _ in block.choices for language in CATALOGUES)]


def translate_on_load(app: gr.Blocks) -> None:
    """What Gradio's front end leaves in English for a Chinese visitor: the options of radios and dropdowns, the
    column headers of examples and of empty tables (it never translates them), and the titles of tabs (it does
    not redo them after PAGE_LANGUAGE_HEAD switches a "zh" or "zh-Hans" browser). Each page gets them again, in
    its language, when it loads. Call inside `with app:`."""
    choosers = translated_choosers(app)
    tables = [block for block in app.blocks.values() if isinstance(block, gr.Dataset) and block.headers]
    empty_frames = [block for block in app.blocks.values()
                    if isinstance(block, gr.Dataframe) and not block.value["data"] and block.value["headers"]]
    tabs = [block for block in app.blocks.values() if isinstance(block, gr.Tab)]
    outputs = choosers + tables + empty_frames + tabs

    def translated():
        if request_language() is None:
            return [gr.skip()] * len(outputs)
        return ([type(chooser)(choices=[(tr(display), value) for display, value in chooser.choices])
                 for chooser in choosers]
                + [gr.Dataset(headers=[tr(header) for header in table.headers]) for table in tables]
                + [gr.Dataframe(pd.DataFrame(columns=[tr(header) for header in frame.value["headers"]]))
                   for frame in empty_frames]  # new headers alone leave the value's English ones showing
                + [gr.Tab(label=tab.label) for tab in tabs])  # by now a translation key: the page translates it

    app.load(translated, None, outputs, api_visibility="private", show_progress="hidden", concurrency_limit=None)


def english(text):
    """The English text behind a translation key (the text itself when it is not one)."""
    if isinstance(text, str) and text.startswith(KEY_MARKER):
        return json.loads(text[len(KEY_MARKER):])["key"]
    return text


class TranslatedBlocks(gr.Blocks):
    """gr.Blocks whose API description keeps the English labels: API clients and MCP tools read those, whatever
    language the page is shown in."""

    def get_api_info(self, *args, **kwargs):
        info = super().get_api_info(*args, **kwargs)
        for endpoints in (info.get("named_endpoints", {}), info.get("unnamed_endpoints", {})):
            for endpoint in endpoints.values():
                for value in endpoint["parameters"] + endpoint["returns"]:
                    value["label"] = english(value["label"])
        return info
