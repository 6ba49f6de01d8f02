"""Generated aerial scenes in memory: images, boxes, rotated boxes and true masks.

The same drawing as :mod:`fiftyone_samrs.testing.synthetic` (land cover,
roads, clutter, shadows, objects, sensor), without writing a source tree:
for training the small SAM (``scripts/train_tiny_sam.py``), for tests that
need prompts and ground truth but no FiftyOne dataset, and for benchmarks.

Two kinds of scene:

- ``"land"``: DOTA-like: objects of a DOTA class list on land cover; the
  rotated box is the object's rectangle rounded to integer corners (as DOTA
  v1.0 writes it) and the H-Box is that quad's circumscribed box;
- ``"sea"``: HRSC2016-like: ships (pointed hulls) on water with wakes; the
  H-Box is the hull's integer box, the rotated box the rectangle around it.

Each scene is generated from its own ``numpy`` random generator (see
:func:`make_scene`), so a scene depends only on its key, never on what was
generated before.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np

from fiftyone_samrs.core import classes as C
from fiftyone_samrs.core.geometry import quad_to_hbox, rbox_to_quad
from fiftyone_samrs.core.records import InstanceMask

__all__ = ["Scene", "make_scene", "make_scenes", "scene_key"]

#: tags mixed into the random keys of generated scenes, so that streams used
#: for different purposes never meet (the source trees of ``synthetic`` use
#: two-number keys ``[seed, index]``; scenes here use three numbers)
TAGS = {"train": 0x5A31, "val": 0x5A32, "test": 0x5A33, "bench": 0x5A34}


@dataclass
class Scene:
    """One generated image and its objects (source pixels).

    Attributes:
        image: ``(H, W, 3)`` RGB uint8
        hboxes: ``(N, 4)`` float xyxy H-Boxes
        quads: ``(N, 4, 2)`` rotated-box corners
        masks: the true instance mask of each object (None where the object
            fell outside the image)
        labels: class names
        kind: ``"land"`` or ``"sea"``
    """

    image: np.ndarray
    hboxes: np.ndarray
    quads: np.ndarray
    masks: List[Optional[InstanceMask]]
    labels: List[str]
    kind: str

    @property
    def size(self) -> Tuple[int, int]:
        """``(height, width)``."""
        return int(self.image.shape[0]), int(self.image.shape[1])

    def __len__(self) -> int:
        return len(self.labels)


def scene_key(purpose: str, seed: int, index: int) -> List[int]:
    """The random key of scene ``index`` of stream ``seed`` for a purpose (:data:`TAGS`)."""
    if purpose not in TAGS:
        raise ValueError("unknown purpose %r; use %s" % (purpose, ", ".join(TAGS)))
    return [TAGS[purpose], int(seed), int(index)]


def make_scene(
    key: Sequence[int],
    size: Tuple[int, int] = (1024, 768),
    n_objects: int = 15,
    kind: str = "land",
    labels: Optional[Sequence[str]] = None,
) -> Scene:
    """Generates one scene.

    Args:
        key: the random key (``np.random.default_rng(key)``), e.g. from
            :func:`scene_key`
        size: ``(width, height)``
        n_objects: objects placed (one per cell of a jittered grid, never
            overlapping)
        kind: ``"land"`` (DOTA-like) or ``"sea"`` (HRSC-like ships)
        labels: the class names drawn from (land; default: DOTA v1.0)

    Returns:
        the :class:`Scene`; objects whose mask is empty are dropped
    """
    from fiftyone_samrs.testing import synthetic as S

    width, height = int(size[0]), int(size[1])
    rng = np.random.default_rng(list(key))
    if kind == "land":
        names = list(labels) if labels else list(C.DOTA_CLASSES["1.0"])
        objs = S._place(rng, n_objects, width, height, names)
        img, _, masks = S._render(rng, width, height, objs, gt_masks=True)
        quads = [np.round(S._rbox_quad(o)) for o in objs]
        hboxes = [quad_to_hbox(q) for q in quads]
    elif kind == "sea":
        objs = S._place(rng, n_objects, width, height, ["ship"], margin=3)
        for o in objs:
            ang = o["angle"] + (0.0 if rng.integers(2) else math.pi)
            local = S._local_polygons("ship", o["length"], o["width"])
            o["polys"] = S._to_image(local, o["cx"], o["cy"], ang)
            o["draw_angle"] = ang
        img, _, masks = S._render(rng, width, height, objs, gt_masks=True, scene="sea")
        quads, hboxes = [], []
        for o in objs:
            x0, y0, x1, y1 = quad_to_hbox(o["polys"][0])
            hboxes.append((math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1)))
            quads.append(rbox_to_quad(o["cx"], o["cy"], o["length"], o["width"], o["angle"]))
    else:
        raise ValueError("kind must be 'land' or 'sea', got %r" % (kind,))
    keep = [i for i, m in enumerate(masks) if m is not None and m.area > 0]
    return Scene(
        image=img,
        hboxes=np.array([hboxes[i] for i in keep], dtype=np.float64).reshape(-1, 4),
        quads=np.array([quads[i] for i in keep], dtype=np.float64).reshape(-1, 4, 2),
        masks=[masks[i] for i in keep],
        labels=[objs[i]["label"] for i in keep],
        kind=kind,
    )


def make_scenes(
    n: int,
    seed: int = 0,
    purpose: str = "test",
    size: Tuple[int, int] = (1024, 768),
    n_objects: int = 15,
    kind: str = "land",
    labels: Optional[Sequence[str]] = None,
) -> List[Scene]:
    """``n`` scenes of one stream (``scene_key(purpose, seed, i)``, i = 0..n-1)."""
    return [make_scene(scene_key(purpose, seed, i), size, n_objects, kind, labels)
            for i in range(n)]
