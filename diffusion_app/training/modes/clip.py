"""Mode "clip": an open_clip model trained contrastively on captioned images with open_clip's own ClipLoss,
as open_clip's training script does, on the views CLIP guidance feeds it: each image is seen through one
random cutout a step (a resized crop of 25-100% of it, a small rotation, a flip; core/cutouts.py).

The architecture is an open_clip model config JSON (clip_config). Saved as a folder that open_clip loads
with `create_model_and_transforms("local-dir:FOLDER")`: open_clip_config.json and open_clip_model.safetensors.
"""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import torch
from accelerate import Accelerator
from open_clip.loss import ClipLoss
from safetensors.torch import save_file

from ...core.cutouts import make_cutouts
from ..config import TrainingConfig
from ..data import ImageDataset
from ..sources import read_items

CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"


def model_config(path: str | Path) -> tuple[str, dict]:
    """(name, config) of an open_clip config JSON; a local-dir folder's open_clip_config.json also works."""
    path = Path(path)
    config = json.loads(path.read_text())
    return path.stem, config.get("model_cfg", config)


class ClipMode:
    def __init__(self, config: TrainingConfig, accelerator: Accelerator):
        self.config = config
        items = read_items(config)
        if items.captions is None or not all(items.captions):
            raise ValueError("CLIP training needs a caption for every image.")
        self.name, self.model_cfg = model_config(config.clip_config)
        self.model = open_clip.CLIP(**self.model_cfg, output_dict=True)
        self.image_size = self.model.visual.image_size
        self.tokenizer = open_clip.SimpleTokenizer(context_length=self.model_cfg["text_cfg"]["context_length"])
        self.dataset = ImageDataset(items, config.resolution, 3, center_crop=True)
        self.mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
        self.contrastive = ClipLoss()

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.model.parameters())

    def describe(self) -> dict:
        return {"images": len(self.dataset), "captions": len(set(self.dataset.captions))}

    def views(self, pixels: torch.Tensor) -> torch.Tensor:
        """One random cutout of each image, at CLIP's input size and normalisation. The cutouts' seeds come from
        torch's random state, which checkpoints restore, so a resumed run sees the same views."""
        seeds = torch.randint(0, 2**62, (len(pixels),)).tolist()
        generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        cutouts = make_cutouts((pixels.float() + 1) / 2, 1, tuple(self.image_size), generators)
        return (cutouts - self.mean.to(cutouts.device)) / self.std.to(cutouts.device)

    def loss(self, model, batch: dict) -> torch.Tensor:
        tokens = self.tokenizer(batch["captions"]).to(batch["pixel_values"].device)
        output = model(self.views(batch["pixel_values"]), tokens)
        return self.contrastive(output["image_features"].float(), output["text_features"].float(),
                                output["logit_scale"].float())

    def sample_grid(self, model):
        return None

    def save(self, model, output_dir: Path) -> Path:
        folder = output_dir / "clip"
        folder.mkdir(parents=True, exist_ok=True)
        preprocess = {"mean": list(open_clip.OPENAI_DATASET_MEAN), "std": list(open_clip.OPENAI_DATASET_STD),
                      "interpolation": "bicubic", "resize_mode": "shortest"}
        (folder / CONFIG_FILE).write_text(json.dumps({"model_cfg": self.model_cfg, "preprocess_cfg": preprocess},
                                                     indent=2))
        dtype = torch.float16 if self.config.save_precision == "fp16" else torch.float32
        save_file({key: value.to(dtype).contiguous() for key, value in model.state_dict().items()},
                  folder / WEIGHTS_FILE)
        return folder
