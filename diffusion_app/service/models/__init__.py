"""Models on devices: loading catalog entries with from_pretrained, compiling them, the pipeline cache and its
per-device workers, CLIP models, LoRA adapters and reading model configs. It knows nothing of runs or jobs: it
may import core/, the catalog and settings, and (for LoRA adapters) the Studio."""
