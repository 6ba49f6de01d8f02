"""Recipe: a SAMRS export as a torchgeo ``NonGeoDataset``.

torchgeo's non-geo datasets yield ``{"image": ..., "mask": ...}`` dicts and
take ``transforms(sample) -> sample``; :class:`SemanticDataset` already reads
the files, so a torchgeo dataset is a thin subclass. This package does not
depend on torchgeo: the recipe is code to copy (``TORCHGEO_RECIPE``, shown
below and in ``docs/exporting.md``, "Training on an export"), which the tests
run as written (with torchgeo when it is installed).

"""

TORCHGEO_RECIPE = '''\
from torchgeo.datasets import NonGeoDataset

from fiftyone_samrs.training import SemanticDataset


class SAMRSSegmentation(NonGeoDataset):
    """The semantic labels of a SAMRS export as a torchgeo dataset."""

    def __init__(self, root, split="train", transforms=None):
        self.data = SemanticDataset(root, split=split)
        self.classes = self.data.classes
        self.transforms = transforms

    def __len__(self):
        return len(self.data)

    def __getitem__(self, index):
        image, mask = self.data[index]  # float32 (3, H, W) in [0, 1]; long (H, W), 255 = ignore
        sample = {"image": image, "mask": mask}
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample
'''

__doc__ += "Usage::\n\n" + "".join(
    "    " + line if line.strip() else line for line in TORCHGEO_RECIPE.splitlines(True))
