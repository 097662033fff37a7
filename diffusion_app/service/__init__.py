"""The backend, in rooms: generation/ (runs), models/ (loading and caching), jobs/ (training jobs), scale/ (Ray).
At the top: the Studio every request shares, its start-up, the history, visitors and ZeroGPU time. No gradio
import anywhere in here."""
