"""Training on several SAMRS subsets at once, as the SAMRS release pre-trains
on SOTA + SIOR + FAST.

The release's trainer (``main_pretrain.py``) builds one DataLoader per subset,
splits the batch size over them in proportion to the subsets' sizes, and
steps through them together: every step takes one batch from each subset
(each subset has its own segmentation head). :class:`MultiSubsetLoader` does
the same. With proportional batch sizes every subset needs about the same
number of batches per pass (SOTA / SIOR / FAST at 16: 5,826 / 5,862 / 5,831),
so the choice of epoch length matters little; it
is set by the subset that needs the most batches (``length="max"``, the
default: every image of every subset is seen each epoch, and a subset that
runs out first starts a new, reshuffled pass for the remaining steps), or by
the one that needs the fewest (``length="min"``: the release's ``zip``).

Batch sizes are per process: under DistributedDataParallel give each
subset's ``DistributedSampler`` in ``samplers`` and call
:meth:`MultiSubsetLoader.set_epoch` every epoch.
"""

from __future__ import annotations

import math
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Union

from torch.utils.data import DataLoader, Dataset

#: images of the SAMRS subsets used for pre-training (the release's numbers)
SAMRS_SUBSET_SIZES = {"sota": 17480, "sior": 11725, "fast": 64147}

Sizes = Union[Mapping[str, int], Sequence[int]]


def _largest_remainder(shares: List[float], total: int) -> List[int]:
    sizes = [max(1, math.floor(s)) for s in shares]
    while sum(sizes) > total:  # the minimum of 1 took too much: from the most over
        i = max((k for k in range(len(sizes)) if sizes[k] > 1),
                key=lambda k: sizes[k] - shares[k])
        sizes[i] -= 1
    while sum(sizes) < total:  # the rest to the largest remainders
        i = max(range(len(sizes)), key=lambda k: shares[k] - sizes[k])
        sizes[i] += 1
    return sizes


def proportional_batch_sizes(sizes: Sizes, total: int, rounding: str = "largest_remainder"
                             ) -> Union[Dict[str, int], List[int]]:
    """Splits a batch size over subsets in proportion to their sizes.

    Args:
        sizes: the subsets' numbers of images, a dict (name -> size) or a list
        total: the total batch size
        rounding: ``"largest_remainder"`` (every subset gets at least 1 and
            the sizes sum to ``total``) or ``"floor"`` (the SAMRS release:
            ``int(total * size / sum)``, at least 1; the sum may fall short)

    Returns:
        the batch sizes, a dict or a list as ``sizes``. For the release's
        SOTA / SIOR / FAST (17,480 / 11,725 / 64,147 images) and 16:
        3 / 2 / 11 (``"floor"``: 2 / 2 / 10)

    Raises:
        ValueError: a size is not positive, ``total`` is smaller than the
            number of subsets, or an unknown ``rounding``
    """
    names = list(sizes) if isinstance(sizes, Mapping) else None
    counts = [int(sizes[n]) for n in names] if names is not None else [int(s) for s in sizes]
    if not counts or min(counts) <= 0:
        raise ValueError("every subset needs at least one image, got sizes %r" % (sizes,))
    if total < len(counts):
        raise ValueError("a total batch size of %d cannot give each of %d subsets a batch"
                         % (total, len(counts)))
    shares = [total * c / sum(counts) for c in counts]
    if rounding == "largest_remainder":
        out = _largest_remainder(shares, total)
    elif rounding == "floor":
        out = [max(1, int(s)) for s in shares]
    else:
        raise ValueError("rounding must be 'largest_remainder' or 'floor', got %r" % rounding)
    return dict(zip(names, out)) if names is not None else out


class MultiSubsetLoader:
    """One DataLoader per subset, stepped together.

    Each step yields ``{name: batch}`` with one batch of every subset (what
    each subset's DataLoader yields). ``len()`` is the number of steps of an
    epoch (see the module docstring for ``length``).

    Args:
        datasets: name -> dataset (e.g. :class:`SemanticDataset` of SOTA,
            SIOR and FAST)
        total_batch_size: the batch size of a step, split over the subsets by
            :func:`proportional_batch_sizes`
        sizes: name -> the size to split by (default: ``len`` of each dataset)
        rounding: as :func:`proportional_batch_sizes`
        length: ``"max"`` (the subset needing the most batches sets the
            epoch; the others start over) or ``"min"`` (the release's ``zip``)
        samplers: optional name -> sampler (e.g. ``DistributedSampler``)
        **loader_kwargs: passed to every DataLoader (``num_workers``,
            ``collate_fn``, ``pin_memory``...); ``shuffle`` (without a
            sampler) and ``drop_last`` default to True, as in the release

    Raises:
        ValueError: no datasets, an unknown ``length``, or a subset smaller
            than its batch size with ``drop_last``
    """

    def __init__(self, datasets: Mapping[str, Dataset], total_batch_size: int, *,
                 sizes: Optional[Mapping[str, int]] = None,
                 rounding: str = "largest_remainder", length: str = "max",
                 samplers: Optional[Mapping[str, object]] = None, **loader_kwargs) -> None:
        if not datasets:
            raise ValueError("MultiSubsetLoader needs at least one dataset")
        if length not in ("max", "min"):
            raise ValueError("length must be 'max' or 'min', got %r" % length)
        self.length = length
        self.samplers = dict(samplers or {})
        sizes = sizes or {name: len(ds) for name, ds in datasets.items()}
        self.batch_sizes = proportional_batch_sizes(
            {name: sizes[name] for name in datasets}, total_batch_size, rounding)
        self.loaders = {name: self._loader(name, ds, loader_kwargs)
                        for name, ds in datasets.items()}

    def _loader(self, name: str, dataset: Dataset, kwargs: dict) -> DataLoader:
        kwargs = dict(kwargs)
        kwargs.setdefault("drop_last", True)
        sampler = self.samplers.get(name)
        if sampler is None:
            kwargs.setdefault("shuffle", True)
        loader = DataLoader(dataset, batch_size=self.batch_sizes[name], sampler=sampler,
                            **kwargs)
        if len(loader) == 0:
            raise ValueError("subset %r has %d images, fewer than its batch size %d "
                             "(drop_last): give it more images or pass drop_last=False"
                             % (name, len(dataset), self.batch_sizes[name]))
        return loader

    def __len__(self) -> int:
        counts = [len(loader) for loader in self.loaders.values()]
        return max(counts) if self.length == "max" else min(counts)

    def set_epoch(self, epoch: int) -> None:
        """Calls ``set_epoch`` of the samplers that have it (DistributedSampler)."""
        for sampler in self.samplers.values():
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)

    def __iter__(self) -> Iterator[Dict[str, object]]:
        iterators = {name: iter(loader) for name, loader in self.loaders.items()}
        for _ in range(len(self)):
            step = {}
            for name in self.loaders:
                try:
                    step[name] = next(iterators[name])
                except StopIteration:  # a shorter subset starts a new pass
                    iterators[name] = iter(self.loaders[name])
                    step[name] = next(iterators[name])
            yield step
