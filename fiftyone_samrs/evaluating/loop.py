"""The per-sample read-compute-write loop shared by :func:`~.evaluation.evaluate`,
:func:`~.quality.compute_quality` and :func:`~.study.prompt_study`.

Samples are read in batches of raw documents (no FiftyOne label objects),
handed to a ``compute`` function one :class:`SampleRow` at a time, and what
it returns is written back in one bulk write per batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from fiftyone_samrs.core.records import InstanceMask
from fiftyone_samrs.fiftyone_io import (
    RawLabel,
    ensure_image_sizes,
    instance_from_label,
    iter_batches,
    label_list_path,
    raw_labels,
    sample_size,
    write_values,
)

#: what ``compute`` returns for a sample: ``(sample values, {field: {label
#: id: {attribute: value}}})``, or None to write nothing
Update = Optional[Tuple[Dict[str, object], Dict[str, Dict[str, dict]]]]


@dataclass
class SampleRow:
    """One sample as the loop reads it.

    Attributes:
        id: the sample id
        filepath: the image
        width, height: the image size (repaired from the file when missing)
        labels: per label field read, its labels as :class:`RawLabel` s
            (``[]`` when the field is unset)
    """

    id: str
    filepath: str
    width: int
    height: int
    labels: Dict[str, List[RawLabel]]

    def instances(self, field: str) -> List[Optional[InstanceMask]]:
        """The masks of a field's Detections in image pixels (None: no mask)."""
        return [instance_from_label(d, self.width, self.height) for d in self.labels[field]]


def for_each_sample(
    sample_collection,
    fields: Sequence[str],
    compute: Callable[[SampleRow], Update],
    progress=True,
    batch_size: int = 256,
) -> int:
    """Runs ``compute`` on every sample of a collection and writes what it returns.

    Args:
        sample_collection: a dataset or view
        fields: the label-list fields to read (missing ones read as ``[]``)
        compute: called once per sample, in the collection's order
        progress: a progress bar (True/False) or a FiftyOne progress callback
        batch_size: samples per database read and write

    Returns:
        the number of samples visited
    """
    import fiftyone.core.utils as fou

    ensure_image_sizes(sample_collection)
    paths = {f: label_list_path(sample_collection, f) for f in fields}
    read = ["filepath", "metadata.width", "metadata.height"] + [p for p in paths.values() if p]
    n = 0
    with fou.ProgressBar(total=len(sample_collection), progress=progress) as pb:
        for ids, vals in iter_batches(sample_collection, read, batch_size=batch_size):
            sample_sets: Dict[str, dict] = {}
            label_sets: Dict[str, dict] = {}
            for j, sid in enumerate(ids):
                width, height = sample_size(vals["filepath"][j], vals["metadata.width"][j],
                                            vals["metadata.height"][j])
                row = SampleRow(sid, vals["filepath"][j], width, height, {
                    f: raw_labels(vals[p][j]) if p else [] for f, p in paths.items()})
                out = compute(row)
                if out is not None:
                    sample_values, label_values = out
                    if sample_values:
                        sample_sets[sid] = sample_values
                    if label_values:
                        label_sets[sid] = {paths[f]: v for f, v in label_values.items()}
                n += 1
                pb.update()
            write_values(sample_collection, sample_sets, label_sets)
    return n
