"""Diffusion Studio: an interactive diffusion playground built on diffusers and Gradio."""
