"""The backend: model cache, sampling loops and jobs. No gradio import anywhere in here."""
