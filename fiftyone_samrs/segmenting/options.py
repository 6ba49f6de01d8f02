"""The frozen settings of a segment call, beside :class:`~.runs.SegmentSettings`
(what decides the result): :class:`EngineSpec` (how the engine is built, by
this process or by each Ray worker) and :class:`LoopOptions` (how the sample
loop runs), and the checks that turn ``segment``'s arguments into them."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Optional, Tuple

import fiftyone as fo

from fiftyone_samrs.core.classes import resolve_classes
from fiftyone_samrs.core.painting import PAINT_ORDERS
from fiftyone_samrs.fiftyone_io import check_label_field, dataset_dir, dataset_of, default_classes
from fiftyone_samrs.segmenting.backends import backend_spec, make_backend
from fiftyone_samrs.segmenting.base import Engine
from fiftyone_samrs.segmenting.prompts import needs_quads, parse_prompt
from fiftyone_samrs.segmenting.runs import SegmentSettings


@dataclass(frozen=True)
class EngineSpec:
    """How to build a registered backend's engine (see
    :func:`~fiftyone_samrs.segment` for the arguments)."""

    backend: str = "sam"
    model: Optional[str] = None
    checkpoint: Optional[str] = None
    device: Optional[str] = None
    dtype: Optional[str] = None
    batch_size: int = 4
    decoder_chunk: int = 64

    def on_device(self, device) -> "EngineSpec":
        """The same spec on another device (a Ray worker's)."""
        return replace(self, device=device)

    def build(self, n_images: Optional[int] = None) -> Engine:
        """The engine (the model loaded); ``n_images``: the images it will
        see, which decides SAM's ``compile="auto"`` on a CPU."""
        spec, kwargs = backend_spec(self.backend), {}
        if spec.batched:
            kwargs = dict(encoder_batch=self.batch_size, decoder_chunk=self.decoder_chunk)
        if spec.sized:
            kwargs["expected_images"] = n_images
        return make_backend(self.backend, model=self.model, checkpoint=self.checkpoint,
                            device=self.device, dtype=self.dtype, **kwargs)


@dataclass(frozen=True)
class LoopOptions:
    """How :class:`~.loop.SampleLoop` works: images per model call and
    database write, decoding threads, redo finished samples, skip (count)
    samples that cannot be segmented."""

    batch_size: int = 4
    num_workers: int = 2
    overwrite: bool = False
    skip_failures: bool = False


def check_arguments(sample_collection, prompt, batch_size, shard,
                    paint_order) -> Optional[Tuple[int, int]]:
    """Checks the arguments that need no dataset lookup; returns the shard as ints.

    Raises:
        ValueError: naming the bad argument
    """
    if paint_order not in PAINT_ORDERS:
        raise ValueError("paint_order must be one of %s, got %r" % (PAINT_ORDERS, paint_order))
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1, got %r" % batch_size)
    parse_prompt(prompt)
    if shard is not None:
        shard = (int(shard[0]), int(shard[1]))
        if not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
            raise ValueError("shard must be (i, n) with 0 <= i < n, got %r" % (shard,))
    if sample_collection.media_type != "image":
        raise ValueError("segment() needs an image collection; %r holds %s"
                         % (dataset_of(sample_collection).name, sample_collection.media_type))
    return shard


def resolve_settings(dataset, *, prompt, backend, model, checkpoint, label_field, seg_field,
                     box_field, obb_field, classes, seg_dir, margin, clip_to_rbox,
                     rbox_margin, paint_order) -> SegmentSettings:
    """The run's settings: input and output fields checked, class list and
    PNG folder resolved.

    Raises:
        ValueError: a missing box field, a field of the wrong type, a prompt
            that needs rotated boxes on a dataset without them, or an output
            that would overwrite an input
    """
    check_label_field(dataset, box_field, fo.Detections, "Box")
    has_obb = bool(obb_field) and check_label_field(dataset, obb_field, fo.Polylines,
                                                    "Rotated-box", required=False)
    if needs_quads(prompt) and not has_obb:
        raise ValueError(
            "Prompt %r needs rotated boxes, but dataset %r has %s; use prompt='hbox' or "
            "'auto', or import the rotated boxes"
            % (prompt, dataset.name, "no field %r" % obb_field if obb_field
               else "obb_field=None"))
    if label_field in (box_field, obb_field) or label_field == seg_field:
        raise ValueError("label_field %r would overwrite an input field" % label_field)
    check_label_field(dataset, label_field, fo.Detections, "Label", required=False)
    if seg_field:
        check_label_field(dataset, seg_field, fo.Segmentation, "Segmentation", required=False)
        seg_dir = os.path.abspath(seg_dir) if seg_dir else dataset_dir(dataset, seg_field)
    else:
        seg_dir = None
    class_list = resolve_classes(classes) if classes is not None else default_classes(
        dataset, [box_field])
    return SegmentSettings(
        prompt=prompt, backend=backend, model=model, checkpoint=checkpoint,
        box_field=box_field, obb_field=obb_field if has_obb else None, label_field=label_field,
        seg_field=seg_field, seg_dir=seg_dir, classes=tuple(class_list), margin=margin,
        clip_to_rbox=clip_to_rbox, rbox_margin=rbox_margin, paint_order=paint_order)


@dataclass(frozen=True)
class RayOptions:
    """Where the work runs: ``workers`` Ray actors (None: this process), the
    cluster to join, and whether the actors outlive the call."""

    workers: Optional[int] = None
    address: Optional[str] = None
    keep_workers: bool = False
