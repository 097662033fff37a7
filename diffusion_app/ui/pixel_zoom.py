"""Small pictures shown whole, at a whole-number zoom, with crisp pixels.

The bundled models draw 28-64 px images. Left to the browser, a gallery stretches one 64 px image to the
width of its column (and crops it to the gallery's height), and an image box shows a 58x28 strip at its
natural size. A script in the page's <head> sizes every image inside a `pixelated` component
(`output_gallery`, the Digits strip) to the largest whole multiple of its natural size that fits the box
Gradio gives it, and draws it with `image-rendering: pixelated`, so each model pixel is a square of equal
screen pixels. Images larger than their box are left to Gradio, which scales them down smoothly.

It runs in the browser because only the browser knows both sizes: the server does not know how wide the
page is, and enlarging the PNG itself would change what a visitor downloads.
"""

PIXEL_ZOOM_HEAD = """
<script>
(() => {
  function zoom(image) {
    const box = image.closest("button") || image.parentElement;
    if (!box || !image.naturalWidth) return;
    image.style.width = image.style.height = image.style.imageRendering = image.style.margin = image.style.objectFit = "";
    const factor = Math.floor(Math.min(box.clientWidth / image.naturalWidth,
                                       box.clientHeight / image.naturalHeight));
    if (factor < 1) return;
    image.style.width = `${image.naturalWidth * factor}px`;
    image.style.height = `${image.naturalHeight * factor}px`;
    image.style.imageRendering = "pixelated";
    image.style.margin = "auto";
    image.style.objectFit = "fill";  // the box is the image's own size: Gradio's scale-down would shrink it back
    image.dataset.zoom = factor;
  }
  const zoomAll = () => document.querySelectorAll(".pixelated img").forEach(zoom);
  document.addEventListener("load", (event) => {
    if (event.target.tagName === "IMG" && event.target.closest(".pixelated")) zoom(event.target);
  }, true);  // load does not bubble: catch it on the way down
  window.addEventListener("resize", zoomAll);
  new ResizeObserver(zoomAll).observe(document.documentElement);
})();
</script>
"""
