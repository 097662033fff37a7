"""Diffusion Studio: an interactive diffusion playground built on diffusers and Gradio."""

from .torchvision_compat import ensure_torchvision_importable

ensure_torchvision_importable()
