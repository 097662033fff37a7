"""Generation runs: what each tab asks of a model (sampling, colour and CLIP guidance, text to image, image to
image, the forward process, X/Y/Z sweeps) and the zip of a run's images. A run takes a Studio and gets its
pipelines from the Studio's cache; it may import models/ and the top-level service modules, never jobs/ or
scale/."""
