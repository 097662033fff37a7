"""The colour picker's dialog opens on the colour it holds, not on red.

Gradio's ColorPicker (6.31) places the dialog's hue slider and saturation marker from the value when the
dialog button is clicked, but on the first click the dialog is not on the page yet, so it has nothing to
measure and opens at hue 0 with the marker in the white corner: Colour guidance's orange looks red. From
the second opening on it is right. Until Gradio fixes it, a script in the page's <head> closes and
reopens a picker's dialog the first time it opens (a 60 ms blink; one frame is too soon, Gradio has not
shown the dialog yet). tests/test_browser_walkthrough.py checks the opened dialog's hue.
"""

COLOUR_PICKER_HEAD = """
<script>
(() => {
  const opened = new WeakSet();
  document.addEventListener("click", (event) => {
    const button = event.target.closest && event.target.closest("button.dialog-button");
    if (!button || !event.isTrusted || opened.has(button)) return;
    opened.add(button);
    setTimeout(() => { button.click(); setTimeout(() => button.click(), 30); }, 30);
  }, true);
})();
</script>
"""
