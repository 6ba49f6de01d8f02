"""Training on a SAMRS-layout export with PyTorch.

Reads the files ``export_samrs`` writes (see ``docs/exporting.md``); needs
torch, numpy, OpenCV and pycocotools, never FiftyOne or its database::

    from torch.utils.data import DataLoader
    from fiftyone_samrs.training import (InstanceDataset, MultiSubsetLoader,
                                         SemanticDataset, collate_instances)

    train = SemanticDataset("/data/SOTA", split="train")     # (image, label)
    image, label = train[0]       # float32 (3, H, W) in [0, 1]; long (H, W), 255 = ignore

    inst = InstanceDataset("/data/SOTA", split="train")      # (image, target)
    loader = DataLoader(inst, batch_size=4, collate_fn=collate_instances)

    # SOTA + SIOR + FAST together, as the SAMRS release pre-trains
    subsets = {n: SemanticDataset("/data/" + n, "train") for n in ("SOTA", "SIOR", "FAST")}
    for step in MultiSubsetLoader(subsets, total_batch_size=16, num_workers=4):
        images, labels = step["SOTA"]   # one batch of every subset per step

A torchgeo ``NonGeoDataset`` recipe: :mod:`.torchgeo_recipe`.
"""

from fiftyone_samrs.training.datasets import (
    IGNORE_INDEX,
    InstanceDataset,
    SemanticDataset,
    collate_instances,
    instance_target,
)
from fiftyone_samrs.training.multi import (
    SAMRS_SUBSET_SIZES,
    MultiSubsetLoader,
    proportional_batch_sizes,
)
from fiftyone_samrs.training.torchgeo_recipe import TORCHGEO_RECIPE

__all__ = [
    "IGNORE_INDEX",
    "InstanceDataset",
    "MultiSubsetLoader",
    "SAMRS_SUBSET_SIZES",
    "SemanticDataset",
    "TORCHGEO_RECIPE",
    "collate_instances",
    "instance_target",
    "proportional_batch_sizes",
]
