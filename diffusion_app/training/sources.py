"""Where a training run's images come from: the folder or the `datasets` dataset its config names. The one
module that knows both readers, so that neither data.py nor hub_datasets.py imports the other's users."""

from __future__ import annotations

from pathlib import Path

from .data import TrainingItems, folder_items
from .hub_datasets import dataset_items


def read_items(config) -> TrainingItems:
    """The config's training data: a `datasets` dataset (dataset_name) or a folder (train_data_dir); images
    without a caption take the instance prompt, when one is given."""
    if config.dataset_name:
        items = dataset_items(config.dataset_name, config.dataset_split, config.image_column, config.caption_column,
                              config.label_column)
    else:
        items = folder_items(Path(config.train_data_dir), config.caption_column or "text")
    if config.instance_prompt:
        items.captions = [caption or config.instance_prompt for caption in items.captions or [None] * len(items.images)]
    return items
