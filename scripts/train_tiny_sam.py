#!/usr/bin/env python
"""Trains ``samrs-tiny``: a small Segment Anything model on generated aerial scenes.

A STAND-IN for demos, tests and benchmarks, NOT a model for real imagery: it
has only ever seen the generated scenes of
:mod:`fiftyone_samrs.testing.scenes` (drawn shapes on drawn land cover).

The architecture is SAM's own (``segment_anything.modeling``), at 1024x1024
input: a small ViT image encoder (``--encoder-dim`` wide, ``--depth``
blocks, the last with global attention) but the REAL prompt encoder and mask
decoder (transformer width 256, depth 2, 8 heads, 4 mask tokens), so the
project's fast decoder runs on it at production size and
:func:`fiftyone_samrs.segmenting.sam.models.load_sam` reads it like any
checkpoint.

Training, one generated scene per step (land scenes with DOTA v1.0 classes,
or sea scenes with ships; several image sizes):

- the encoder runs on the whole 1024 input; the decoder runs on up to
  ``--prompts`` objects of the scene, each with a prompt drawn from the
  SAMRS paper's set (H-Box, RH-Box, CP, H-Box-M, R-Box-M, RH-Box-M and
  their combinations, built by :func:`fiftyone_samrs.segmenting.prompts.build_prompts`
  exactly as at inference), boxes jittered on half of the objects;
- to save time the decoder does not run on all 64x64 embedding cells of each
  prompt: it runs on a window around the object (``--crop`` cells a side at
  least, more for large objects) plus ``--far-cells`` cells drawn at random
  from the rest of the map, each standing for ``rest / far-cells`` cells: in
  every token-to-image attention its key gets the bias ``log(rest /
  far-cells)`` and in the loss the same weight, an unbiased stand-in for the
  whole map (the mask decoder's output upscaling works cell by cell, so the
  far cells are decoded exactly). The other objects that fall among those
  cells teach the decoder to segment the prompted object only, and the far
  field to stay quiet, as the whole-map inference needs; in the second half a
  fraction ``--full-frac`` of the steps decodes the whole map;
- SAM's positional encoding draws random 2-D frequencies at scale 1 (a buffer, a
  value, not a change of architecture); here either at ``--pe-scale``, or, with
  ``--pe-axis LO,HI``, all along the axes (half along x, half along y,
  log-spaced): the inside of a box along each axis is then a sum of sines of
  the offset from its corners, a bilinear form of the two encodings that the
  decoder's attention holds directly. Measured on a fixed encoder,
  training a new decoder: training box IoU 0.21 after 250 steps, where random
  frequencies (scale 2 or 6) stayed below 0.11 for 800 steps; and large objects
  are filled instead of segmented near their top-left corner only;
- prompts go to objects drawn uniformly, or with ``--balance-sizes`` so that
  each size class (sides below 20, 40, 80 px and above) gets its share: a land
  scene has few small or large objects next to many of middle size;
- loss: binary cross-entropy + dice on the low-resolution (256x256 frame)
  logits against the object's pixel coverage of each low-resolution pixel,
  plus the squared error of the IoU head against the IoU of the predicted
  mask, so that ``confidence`` (SAM's predicted IoU) means something.

Two phases: for ``--encoder-steps`` steps the whole model trains on fresh
scenes; then the image encoder is frozen, a ``--pool`` of further training
scenes is encoded once, and the prompt encoder and mask decoder train on
those cached embeddings (``--pool-prompts`` prompts a step, each step far
cheaper). Box localisation by the decoder is the slow part to learn: it
"clicks" a few hundred phase-2 steps in. ``--init`` continues from a saved
checkpoint (a further phase-2 run on an unseen pool, ``--pool-start``: after
1000 steps on one pool of 200 scenes the training IoU there runs about 0.05
above that on fresh scenes);
``--init-encoder`` takes only its image encoder, for a new decoder.
The decoder's cross attentions start with keys tied to queries
(``--tie-gain``), so that prompts attend to the image around them from the
first step.

Everything is seeded (``--seed``): the same command on the same machine and
thread count gives the same weights. At the end the model is evaluated
with the project's :class:`~fiftyone_samrs.segmenting.sam.engine.SamEngine`
on validation scenes (a stream never used for training) next to the
``boxfill`` baseline, and saved in half precision with a JSON sidecar
describing how it was made.

Usage (the shipped model is the last of six runs, each continuing the one
before; 140 min on one core in all, the JSON beside the weights records the
chain under ``init_run``)::

    # 1. 2000 steps: 700 on the whole model, then 1300 on the prompt encoder and mask
    #    decoder over 200 cached scenes (random positional frequencies; 45 min)
    python scripts/train_tiny_sam.py --out r1.pth
    # 2. its encoder, a new prompt encoder and decoder with axis frequencies (15 min)
    python scripts/train_tiny_sam.py --init-encoder r1.pth --encoder-steps 0 --steps 700 \
        --pe-axis 0.25,16 --balance-sizes --out r2.pth
    # 3.-6. decoder-only runs, each on a pool of scenes the others never saw (13-25 min each)
    python scripts/train_tiny_sam.py --init r2.pth --encoder-steps 0 --steps 1000 \
        --pool-start 900 --lr 5e-4 --warmup 20 --full-from 0 --balance-sizes --out r3.pth
    python scripts/train_tiny_sam.py --init r3.pth --encoder-steps 0 --steps 1000 \
        --pool-start 1100 --lr 5e-4 --warmup 20 --full-from 0 --balance-sizes --out r4.pth
    python scripts/train_tiny_sam.py --init r4.pth --encoder-steps 0 --steps 800 \
        --pool-start 1300 --pool 300 --lr 5e-4 --warmup 20 --full-from 0 \
        --balance-sizes 2,1,1,1 --out r5.pth
    python scripts/train_tiny_sam.py --init r5.pth --encoder-steps 0 --steps 600 \
        --pool-start 1600 --pool 300 --lr 4e-4 --warmup 20 --full-from 0 \
        --balance-sizes 2,1,1,1 --out fiftyone_samrs/segmenting/sam/weights/samrs-tiny.pth
    # tried: one run from scratch with axis frequencies (52 min; val H-Box 52.9 / 61.7),
    # then a decoder-only run as 5. (20 min; 55.6 / 65.3, below run 5's 57.0 / 67.5)
    python scripts/train_tiny_sam.py --pe-axis 0.25,16 --balance-sizes --out F.pth
    python scripts/train_tiny_sam.py --steps 3 --out /tmp/x.pth --val-scenes 1   # smoke test
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from fiftyone_samrs.core import classes as C  # noqa: E402
from fiftyone_samrs.segmenting.prompts import build_prompts  # noqa: E402
from fiftyone_samrs.segmenting.sam.models import SamConfig, build_sam_from_config  # noqa: E402
from fiftyone_samrs.testing.scenes import Scene, make_scene, scene_key  # noqa: E402

DEFAULT_OUT = os.path.join(ROOT, "fiftyone_samrs", "segmenting", "sam", "weights", "samrs-tiny.pth")

#: prompt configurations sampled in training, with their weights
TRAIN_PROMPTS: List[Tuple[str, float]] = [
    ("hbox", 0.40),
    ("rhbox", 0.14),
    ("cp", 0.10),
    ("hbox+cp", 0.06),
    ("rhbox+cp", 0.04),
    ("hbox_m", 0.04),
    ("rbox_m", 0.04),
    ("rhbox_m", 0.03),
    ("hbox+hbox_m", 0.04),
    ("rhbox+rbox_m", 0.04),
    ("rhbox+rhbox_m", 0.03),
    ("hbox+cp+hbox_m", 0.02),
    ("rhbox+cp+rbox_m", 0.02),
]

#: image sizes (width, height) of the training scenes, with their weights
TRAIN_SIZES: List[Tuple[Tuple[int, int], float]] = [
    ((1024, 768), 0.35),
    ((1024, 1024), 0.25),
    ((800, 600), 0.2),
    ((800, 800), 0.1),
    ((600, 400), 0.1),
]

GRID = 64  # embedding side at 1024 input
LOW = 256  # low-resolution mask side


def model_config(encoder_dim: int, depth: int) -> SamConfig:
    """The samrs-tiny architecture: a small encoder, SAM's real prompt encoder and decoder."""
    return SamConfig(
        embed_dim=encoder_dim,
        depth=depth,
        num_heads=max(1, encoder_dim // 32),
        global_attn_indexes=(depth - 1,),
        mlp_ratio=4.0,
        window_size=14,
    )


# -- data -----------------------------------------------------------------------------


def training_scene(seed: int, step: int) -> Scene:
    """The scene of one training step: its kind, size and object count are drawn
    from ``[seed, step]``, the scene itself from ``scene_key("train", seed, step)``."""
    rng = np.random.default_rng([seed, step, 7])
    sea = rng.uniform() < 0.25
    sizes, w = zip(*TRAIN_SIZES)
    size = sizes[int(rng.choice(len(sizes), p=np.array(w) / sum(w)))]
    if sea:
        n = int(rng.integers(2, 9))
        return make_scene(scene_key("train", seed, step), size, n, "sea")
    n = int(rng.integers(10, 46))
    return make_scene(scene_key("train", seed, step), size, n, "land", C.DOTA_CLASSES["1.0"])


#: object sides (square root of the mask area, pixels at 1024 input) that bound the
#: size classes of --balance-sizes
SIZE_EDGES = (20.0, 40.0, 80.0)


def axis_frequencies(lo: float, hi: float, n: int) -> torch.Tensor:
    """A ``(2, n)`` frequency matrix for SAM's positional encoding with every frequency
    along an axis: ``n / 2`` along x and ``n / 2`` along y, log-spaced from ``lo`` to
    ``hi`` (cycles per half image side: SAM maps coordinates to [-1, 1]). A box's
    inside along each axis is then a sum of sines of the offset from its corners, a
    bilinear form of the two encodings the decoder's attention can hold directly."""
    half = n // 2
    f = torch.logspace(math.log10(lo), math.log10(hi), half)
    g = torch.zeros(2, n)
    g[0, 0::2] = f
    g[1, 1::2] = f
    return g


def object_weights(scene: Scene, balance: Optional[Sequence[float]]) -> Optional[np.ndarray]:
    """The probability of drawing each object of a scene as a training prompt: uniform
    (``balance`` None), or so that each size class present (:data:`SIZE_EDGES`) gets
    its share ``balance[k]`` of the draws: the few small or large objects of a scene
    are prompted as often as the many of middle size (or more)."""
    if not balance or len(scene) == 0:
        return None
    scale = 1024.0 / max(scene.size)
    side = np.sqrt([m.area for m in scene.masks]) * scale
    cls = np.searchsorted(SIZE_EDGES, side)
    w = np.asarray(balance, dtype=np.float64)[cls] / np.bincount(cls)[cls]
    return w / w.sum()


def lowres_coverage(mask, scale: float, window: Tuple[int, int, int, int], ss: int = 4) -> np.ndarray:
    """The fraction of each low-resolution pixel of ``window`` covered by ``mask``.

    Low-resolution pixel ``(v, u)`` covers input pixels ``[4u, 4u+4) x [4v, 4v+4)``,
    i.e. source pixels ``[4u/scale, (4u+4)/scale)``; ``ss x ss`` samples per pixel.

    Args:
        mask: an ``InstanceMask`` in source pixels
        scale: input side / source side (SAM's ResizeLongestSide factor)
        window: ``(r0, r1, c0, c1)`` low-resolution rows and columns
    """
    r0, r1, c0, c1 = window
    out = np.zeros((r1 - r0, c1 - c0), dtype=np.float32)
    x0, y0, x1, y1 = mask.box
    f = scale / 4.0
    u0, u1 = max(int(math.floor(x0 * f)), c0), min(int(math.ceil(x1 * f)), c1)
    v0, v1 = max(int(math.floor(y0 * f)), r0), min(int(math.ceil(y1 * f)), r1)
    if u1 <= u0 or v1 <= v0:
        return out
    off = (np.arange(ss) + 0.5) / ss
    xs = np.floor(((np.arange(u0, u1)[:, None] + off[None]).reshape(-1)) / f).astype(np.int64) - x0
    ys = np.floor(((np.arange(v0, v1)[:, None] + off[None]).reshape(-1)) / f).astype(np.int64) - y0
    h, w = mask.mask.shape
    vx = (xs >= 0) & (xs < w)
    vy = (ys >= 0) & (ys < h)
    samp = np.zeros((len(ys), len(xs)), dtype=np.float32)
    samp[np.ix_(vy, vx)] = mask.mask[np.ix_(ys[vy], xs[vx])]
    out[v0 - r0 : v1 - r0, u0 - c0 : u1 - c0] = samp.reshape(v1 - v0, ss, u1 - u0, ss).mean(axis=(1, 3))
    return out


def jitter(scene: Scene, rng: np.random.Generator, frac: float = 0.5, std: float = 0.05):
    """H-Boxes and quads with a random shift and scaling on a fraction of the objects."""
    hb = scene.hboxes.copy()
    q = scene.quads.copy()
    n = len(hb)
    pick = rng.uniform(size=n) < frac
    side = np.stack([hb[:, 2] - hb[:, 0], hb[:, 3] - hb[:, 1]], axis=1)
    d = rng.normal(0, std, (n, 4)) * np.concatenate([side, side], axis=1)
    d = np.clip(d, -20, 20) * pick[:, None]
    hb = hb + d
    hb[:, 2] = np.maximum(hb[:, 2], hb[:, 0] + 1)
    hb[:, 3] = np.maximum(hb[:, 3], hb[:, 1] + 1)
    shift = (d[:, :2] + d[:, 2:]) / 2.0
    q = q + shift[:, None, :]
    h, w = scene.size
    hb[:, [0, 2]] = np.clip(hb[:, [0, 2]], 0, w)
    hb[:, [1, 3]] = np.clip(hb[:, [1, 3]], 0, h)
    return hb, q


# -- the decoder on windows of the embedding ------------------------------------------------


def _attention(attn, q, k, v, key_bias=None):
    """``segment_anything``'s ``Attention.forward`` with an optional additive key bias
    ``(B, Nk)``: ``log(n)`` on a key that stands for ``n`` positions of the full map."""
    q, k, v = attn.q_proj(q), attn.k_proj(k), attn.v_proj(v)
    b, nq, c = q.shape
    h = attn.num_heads
    q = q.reshape(b, nq, h, c // h).transpose(1, 2)
    k = k.reshape(b, k.shape[1], h, c // h).transpose(1, 2)
    v = v.reshape(b, v.shape[1], h, c // h).transpose(1, 2)
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(c // h)
    if key_bias is not None:
        scores = scores + key_bias[:, None, None, :].to(scores.dtype)
    out = torch.softmax(scores, dim=-1) @ v
    return attn.out_proj(out.transpose(1, 2).reshape(b, nq, c))


def two_way(transformer, src, pos, tokens, key_bias=None):
    """``TwoWayTransformer.forward`` on a set of image positions (``(B, N, C)``, already
    flattened), with the key bias of :func:`_attention` in every token-to-image attention.
    With ``key_bias`` None and all 4096 positions it is SAM's computation exactly."""
    queries, keys = tokens, src
    for layer in transformer.layers:
        if layer.skip_first_layer_pe:
            queries = layer.self_attn(q=queries, k=queries, v=queries)
        else:
            q = queries + tokens
            queries = queries + layer.self_attn(q=q, k=q, v=queries)
        queries = layer.norm1(queries)
        q, k = queries + tokens, keys + pos
        queries = layer.norm2(queries + _attention(layer.cross_attn_token_to_image, q, k, keys,
                                                   key_bias))
        queries = layer.norm3(queries + layer.mlp(queries))
        q, k = queries + tokens, keys + pos
        keys = layer.norm4(keys + layer.cross_attn_image_to_token(q=k, k=q, v=queries))
    q, k = queries + tokens, keys + pos
    queries = transformer.norm_final_attn(
        queries + _attention(transformer.final_attn_token_to_image, q, k, keys, key_bias))
    return queries, keys


def decode_cells(sam, src, pos, sparse, key_bias):
    """SAM's mask decoder (first mask token) on a set of embedding cells per prompt.

    The output upscaling (two 2x2 stride-2 transposed convolutions, a per-pixel
    LayerNorm and GELUs) maps each cell to its own 4x4 block of low-resolution
    logits, so it runs cell by cell exactly as on the whole map.

    Args:
        src: ``(P, N, 256)`` image embedding + dense prompt embedding at the cells
        pos: ``(P, N, 256)`` the dense positional encoding at the cells
        sparse: ``(P, T, 256)`` sparse prompt embeddings
        key_bias: ``(P, N)`` or None (see :func:`_attention`)

    Returns:
        ``(P, N, 4, 4)`` low-resolution logits and ``(P,)`` predicted IoUs
    """
    dec = sam.mask_decoder
    p, n, c = src.shape
    out_tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight], dim=0)
    tokens = torch.cat([out_tokens.unsqueeze(0).expand(p, -1, -1), sparse], dim=1)
    hs, src = two_way(dec.transformer, src, pos, tokens, key_bias)
    up = dec.output_upscaling(src.reshape(p * n, c, 1, 1))  # (P*N, 32, 4, 4)
    hyper = dec.output_hypernetworks_mlps[0](hs[:, 1, :])  # (P, 32)
    up = up.reshape(p, n, up.shape[1], 16)
    logits = torch.einsum("pc,pncs->pns", hyper, up).reshape(p, n, 4, 4)
    iou = dec.iou_prediction_head(hs[:, 0, :])[:, 0]
    return logits, iou


def cell_targets(cov: np.ndarray, cov_r0: int, cov_c0: int, rows: np.ndarray,
                 cols: np.ndarray) -> np.ndarray:
    """The ``(N, 4, 4)`` coverage of cells ``(rows, cols)`` from an object's coverage
    ``cov`` (low-res pixels, origin at cell ``(cov_r0, cov_c0)``, a multiple of 4 in size)."""
    ch, cw = cov.shape[0] // 4, cov.shape[1] // 4
    blocks = cov.reshape(ch, 4, cw, 4).transpose(0, 2, 1, 3)  # (ch, cw, 4, 4)
    out = np.zeros((len(rows), 4, 4), dtype=np.float32)
    rr, cc = rows - cov_r0, cols - cov_c0
    ok = (rr >= 0) & (rr < ch) & (cc >= 0) & (cc < cw)
    out[ok] = blocks[rr[ok], cc[ok]]
    return out


def window_side(extent: float, smallest: int, rng: np.random.Generator) -> int:
    """A window side (embedding cells, a multiple of 8) for an object ``extent`` cells
    long: the object plus 4 to 12 cells, at least ``smallest``, at most the map."""
    want = extent + rng.uniform(4.0, 12.0)
    return int(min(GRID, max(smallest, 8 * math.ceil(want / 8.0))))


def choose_window(box_lr: np.ndarray, side: int, rng: np.random.Generator) -> Tuple[int, int]:
    """A window of ``side`` embedding cells holding the low-res box, at a random place."""
    if side >= GRID:
        return 0, 0
    cells = box_lr / 4.0  # low-res px -> embedding cells
    out = []
    for lo, hi in ((cells[1], cells[3]), (cells[0], cells[2])):
        a, b = int(math.floor(lo)), int(math.ceil(hi))
        first, last = b - side, a  # window start range that contains [a, b)
        if first > last:  # larger than the window: centre it
            start = int(round((a + b - side) / 2.0))
        else:
            start = int(rng.integers(first, last + 1))
        out.append(int(np.clip(start, 0, GRID - side)))
    return out[0], out[1]


def tie_cross_attention(sam, gain: float = 1.5) -> None:
    """Starts every cross attention of the mask decoder with its key projection equal
    to its query projection, so that attention scores begin as (roughly) the dot
    products of the positional encodings: box corners and points attend to the image
    around them from the first step, instead of having to discover it. ``gain``
    scales both projections (scores by ``gain**2``)."""
    t = sam.mask_decoder.transformer
    attns = [t.final_attn_token_to_image]
    for layer in t.layers:
        attns += [layer.cross_attn_token_to_image, layer.cross_attn_image_to_token]
    for a in attns:
        a.q_proj.weight.mul_(gain)
        a.k_proj.weight.copy_(a.q_proj.weight)
        a.k_proj.bias.zero_()
        a.q_proj.bias.zero_()


# -- one step -----------------------------------------------------------------------------------


class Trainer:
    """Holds the model, optimizer and the step logic (see the module docstring)."""

    def __init__(self, args):
        self.args = args
        torch.manual_seed(args.seed)
        self.sam = build_sam_from_config(model_config(args.encoder_dim, args.depth))
        with torch.no_grad():  # the positional-encoding frequencies (a buffer): see --pe-scale
            g = self.sam.prompt_encoder.pe_layer.positional_encoding_gaussian_matrix
            if args.pe_axis:
                g.copy_(axis_frequencies(*args.pe_axis, n=g.shape[1]))
            else:
                g.copy_(torch.randn(g.shape, generator=torch.Generator().manual_seed(args.seed))
                        * args.pe_scale)
            if args.tie_qk_init:
                tie_cross_attention(self.sam, args.tie_gain)
        if args.init:  # continue from a checkpoint of this script (weights and PE buffer)
            sd = torch.load(args.init, map_location="cpu")
            self.sam.load_state_dict({k: v.float() if v.is_floating_point() else v
                                      for k, v in sd.items()})
        elif args.init_encoder:  # its image encoder only: a new prompt encoder and decoder
            sd = torch.load(args.init_encoder, map_location="cpu")
            pre = "image_encoder."
            self.sam.image_encoder.load_state_dict(
                {k[len(pre):]: v.float() for k, v in sd.items() if k.startswith(pre)})
        self.sam.train()
        from segment_anything.utils.transforms import ResizeLongestSide

        self.transform = ResizeLongestSide(1024)
        params = [p for p in self.sam.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
        self.names, w = zip(*TRAIN_PROMPTS)
        self.weights = np.array(w) / sum(w)
        self.dtype = torch.bfloat16 if args.bf16 else None

    def encode(self, scene: Scene):
        """The image embedding ``(1, 256, 64, 64)`` of a scene (SAM's preprocessing)."""
        img = self.transform.apply_image(scene.image)
        x = torch.as_tensor(img).permute(2, 0, 1).contiguous()[None].float()
        return self.sam.image_encoder(self.sam.preprocess(x))

    def start_phase2(self) -> float:
        """Freezes the image encoder and encodes the pool of phase-2 scenes once
        (scenes ``encoder_steps ..`` of the training stream, or ``pool_start ..``);
        returns the seconds taken."""
        t = time.time()
        for prm in self.sam.image_encoder.parameters():
            prm.requires_grad_(False)
        self.sam.image_encoder.eval()
        self.pool = []
        ac = torch.autocast("cpu", dtype=self.dtype) if self.dtype else _null()
        with torch.no_grad(), ac:
            for i in range(self.args.pool):
                start = self.args.encoder_steps if self.args.pool_start is None \
                    else self.args.pool_start
                scene = training_scene(self.args.seed, start + i)
                feats = self.encode(scene).float()
                h, w = scene.size  # only the embedding is needed from now on
                scene.image = np.empty((h, w, 0), dtype=np.uint8)
                self.pool.append((scene, feats))
        return time.time() - t

    def lr_at(self, step: int) -> float:
        a = self.args
        if step < a.warmup:
            return a.lr * (step + 1) / a.warmup
        t = (step - a.warmup) / max(1, a.steps - a.warmup)
        return a.lr * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * t)))

    def step(self, step: int) -> Dict[str, float]:
        a = self.args
        rng = np.random.default_rng([a.seed, step, 11])
        cached = step >= a.encoder_steps
        if cached:  # phase 2: a scene of the pool, its embedding from the frozen encoder
            scene, feats = self.pool[int(rng.integers(len(self.pool)))]
        else:
            scene = training_scene(a.seed, a.stream_start + step)
        h, w = scene.size
        scale = 1024.0 / max(h, w)
        n = len(scene)
        if n == 0:
            return {}
        full = step >= a.full_from * a.steps and rng.uniform() < a.full_frac
        p = a.full_prompts if full else (a.pool_prompts if cached else a.prompts)
        pick = rng.choice(n, size=p, replace=n < p, p=object_weights(scene, a.balance_sizes))
        hb, q = jitter(scene, rng)
        cfg = rng.choice(len(self.names), size=len(pick), p=self.weights)
        for g in self.opt.param_groups:
            g["lr"] = self.lr_at(step)
        ac = torch.autocast("cpu", dtype=self.dtype) if self.dtype else _null()
        if not cached:
            with ac:
                feats = self.encode(scene)
        pe = self.sam.prompt_encoder.get_dense_pe()
        losses, stats = [], {"pix": 0.0, "dice": 0.0, "iou": 0.0, "miou": 0.0, "box_iou": 0.0}
        count = n_sparse = 0
        # one decoder call per number of sparse tokens (configurations with the same
        # count share a call: their dense embeddings are per prompt anyway)
        groups: Dict[int, list] = {}
        for k in np.unique(cfg):
            idx = pick[cfg == k]
            ps = build_prompts(hb[idx], q[idx], self.names[k], (h, w), has_hbox=True)
            points = boxes = masks = None
            if ps.points is not None:
                pts = self.transform.apply_coords(ps.points.astype(np.float64), (h, w))
                points = (torch.as_tensor(pts, dtype=torch.float),
                          torch.as_tensor(ps.point_labels, dtype=torch.int))
            if ps.boxes is not None:
                boxes = torch.as_tensor(self.transform.apply_boxes(ps.boxes, (h, w)),
                                        dtype=torch.float)
            if ps.mask_inputs is not None:
                masks = torch.as_tensor(ps.mask_inputs, dtype=torch.float)
            # in fp32: the positional encoding's phases need it
            sparse, dense = self.sam.prompt_encoder(points=points, boxes=boxes, masks=masks)
            for j, row in enumerate(idx):
                groups.setdefault(int(sparse.shape[1]), []).append(
                    (row, sparse[j], dense[j] if masks is not None else None))
        # then by window side: the object's extent plus a random margin, or the whole map
        calls: Dict[Tuple[int, int], list] = {}
        for t, items in groups.items():
            for it in items:
                x0, y0, x1, y1 = scene.masks[it[0]].box
                extent = max(x1 - x0, y1 - y0) * scale / 16.0  # embedding cells
                side = GRID if full else window_side(extent, a.crop, rng)
                calls.setdefault((t, side), []).append(it)
        no_mask = self.sam.prompt_encoder.no_mask_embed.weight.reshape(-1)
        feat_cells = feats[0].reshape(feats.shape[1], -1).t()  # (4096, 256)
        pe_cells = pe[0].reshape(pe.shape[1], -1).t()
        for (_, side), items in sorted(calls.items()):
            n_far = 0 if side >= GRID else a.far_cells
            cells, biases, targets, weights = [], [], [], []
            for row, _, _ in items:
                m = scene.masks[row]
                bx0, by0, bx1, by1 = m.box
                box_lr = np.array([bx0, by0, bx1, by1], dtype=np.float64) * scale / 4.0
                r, c = choose_window(box_lr, side, rng)
                wr, wc = np.meshgrid(np.arange(r, r + side), np.arange(c, c + side), indexing="ij")
                wr, wc = wr.reshape(-1), wc.reshape(-1)
                inside = np.zeros((GRID, GRID), dtype=bool)
                inside[r:r + side, c:c + side] = True
                rest = np.flatnonzero(~inside.reshape(-1))
                far = rng.choice(rest, size=min(n_far, len(rest)), replace=False) if n_far else \
                    np.zeros(0, dtype=np.int64)
                rows = np.concatenate([wr, far // GRID])
                cols = np.concatenate([wc, far % GRID])
                cells.append(rows * GRID + cols)
                # each far cell stands for len(rest) / n_far cells of the full map
                wf = len(rest) / len(far) if len(far) else 1.0
                biases.append(np.concatenate([np.zeros(len(wr)), np.full(len(far), math.log(wf))]))
                weights.append(np.concatenate([np.ones(len(wr)), np.full(len(far), wf)]))
                # the object's coverage on its own cells, then looked up per cell
                cr0, cc0 = int(box_lr[1] // 4), int(box_lr[0] // 4)
                cr1, cc1 = int(math.ceil(box_lr[3] / 4)) + 1, int(math.ceil(box_lr[2] / 4)) + 1
                cov = lowres_coverage(m, scale, (4 * cr0, 4 * cr1, 4 * cc0, 4 * cc1))
                targets.append(cell_targets(cov, cr0, cc0, rows, cols))
            idx = torch.as_tensor(np.stack(cells))
            target = torch.as_tensor(np.stack(targets))  # (P, N, 4, 4)
            weight = torch.as_tensor(np.stack(weights), dtype=torch.float)[:, :, None, None]
            bias = torch.as_tensor(np.stack(biases), dtype=torch.float) if n_far else None
            sparse = torch.stack([sp for _, sp, _ in items])
            add = torch.stack([no_mask.expand(len(ix), -1) if d is None
                               else d.reshape(d.shape[0], -1).t()[ix]
                               for (_, _, d), ix in zip(items, idx)])
            with ac:
                logits, iou = decode_cells(self.sam, feat_cells[idx] + add, pe_cells[idx], sparse,
                                           bias)
            logits, iou = logits.float(), iou.float()
            # BCE: the mean over the window's pixels plus the mean over the far pixels
            # (weighting each far pixel by the cells it stands for would bury the object
            # under the background); dice and the IoU target use the full-map weights
            bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean((2, 3))
            n_win = bce.shape[1] - n_far
            fl = bce[:, :n_win].mean(1) + (bce[:, n_win:].mean(1) if n_far else 0.0)
            prob = torch.sigmoid(logits)
            dl = 1 - (2 * (weight * prob * target).flatten(1).sum(1) + 1) / (
                (weight * prob).flatten(1).sum(1) + (weight * target).flatten(1).sum(1) + 1)
            with torch.no_grad():
                b = (logits > 0).float()
                inter = (weight * b * target).flatten(1).sum(1)
                union = (weight * b).flatten(1).sum(1) + (weight * target).flatten(1).sum(1) - inter
                true_iou = torch.where(union > 0, inter / union.clamp(min=1e-6), torch.ones_like(union))
            il = (iou - true_iou) ** 2
            losses.append((a.pixel_weight * fl + dl + il).sum())
            stats["pix"] += float(fl.detach().sum())
            stats["dice"] += float(dl.detach().sum())
            stats["iou"] += float(il.detach().sum())
            stats["miou"] += float(true_iou.sum())
            sparse_only = torch.tensor([d is None for _, _, d in items])
            stats["box_iou"] += float(true_iou[sparse_only].sum())
            n_sparse += int(sparse_only.sum())
            count += len(items)
        loss = sum(losses) / count
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.sam.parameters(), a.clip)
        self.opt.step()
        out = {k: v / count for k, v in stats.items()}
        out["box_iou"] = stats["box_iou"] / max(n_sparse, 1)
        out["loss"] = float(loss.detach())
        out["full"] = float(full)
        return out


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


# -- evaluation -------------------------------------------------------------------------------


def evaluate(sam, scenes: Sequence[Scene], prompts: Sequence[str] = ("hbox",),
             margins: Sequence[Optional[float]] = (0.1, None)) -> Dict[str, Dict[str, float]]:
    """mIoU_I / mIoU_P (percent) of the model through the project's engine, and boxfill.

    Returns:
        ``{"<prompt>@<margin>": {"miou_i", "miou_p", "n", "conf_corr"}, "boxfill": {...}}``
    """
    from fiftyone_samrs.core.metrics import mask_iou, miou
    from fiftyone_samrs.segmenting.baselines import BoxFillBackend
    from fiftyone_samrs.segmenting.sam.engine import SamEngine

    sam.eval()
    engine = SamEngine(sam, device="cpu", dtype="fp32")
    embs = engine.encode([s.image for s in scenes])
    out: Dict[str, Dict[str, float]] = {}

    def score(results_per_scene, key, conf=True):
        inters, unions, ious, confs = [], [], [], []
        for s, res in zip(scenes, results_per_scene):
            for m, r in zip(s.masks, res):
                i, u = mask_iou(m, r.mask, s.size)
                inters.append(i)
                unions.append(u)
                ious.append(i / u if u else 0.0)
                confs.append(r.score)
        mi, mp = miou(inters, unions)
        row = {"miou_i": round(100 * mi, 2), "miou_p": round(100 * mp, 2), "n": len(inters)}
        if conf and len(ious) > 2 and np.std(confs) > 0:
            row["conf_corr"] = round(float(np.corrcoef(confs, ious)[0, 1]), 3)
        out[key] = row

    for prompt in prompts:
        for margin in margins:
            res = [engine.decode(e, build_prompts(s.hboxes, s.quads, prompt, s.size, margin=margin))
                   for e, s in zip(embs, scenes)]
            score(res, "%s@%s" % (prompt, "whole" if margin is None else margin))
    box = BoxFillBackend()
    score([box.predict(s.image, build_prompts(s.hboxes, s.quads, "hbox", s.size)) for s in scenes],
          "boxfill", conf=False)
    return out


def validation_scenes(seed: int, n: int) -> List[Scene]:
    """``n`` validation scenes (stream ``val``; 3 land, then 1 sea, repeating)."""
    out = []
    for i in range(n):
        key = scene_key("val", seed, i)
        if i % 4 == 3:
            out.append(make_scene(key, (800, 600), 4, "sea"))
        else:
            out.append(make_scene(key, (1024, 768), 15, "land", C.DOTA_CLASSES["1.0"]))
    return out


# -- saving ------------------------------------------------------------------------------------


def save(sam, path: str, meta: dict) -> int:
    """Saves the state dict in half precision (+ ``<path>.json``); returns the file size."""
    sd = {k: (v.detach().half() if v.is_floating_point() else v.detach()).contiguous()
          for k, v in sam.state_dict().items()}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.save(sd, path)
    size = os.path.getsize(path)
    meta = dict(meta, file_bytes=size)
    with open(os.path.splitext(path)[0] + ".json", "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")
    return size


def _git_commit() -> Optional[str]:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, timeout=10).stdout.strip() or None
    except Exception:
        return None


def _lo_hi(text: str) -> Tuple[float, float]:
    """``--pe-axis LO,HI``: two frequencies, ``0 < LO < HI``."""
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("expected LO,HI (two numbers), got %r" % text) from None
    if not 0 < lo < hi:
        raise argparse.ArgumentTypeError("expected 0 < LO < HI, got %r" % text)
    return lo, hi


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=2000, help="training steps (one scene each)")
    p.add_argument("--prompts", type=int, default=24,
                   help="prompts per step (objects drawn with replacement when fewer)")
    p.add_argument("--encoder-steps", type=int, default=700,
                   help="phase 1: steps training the whole model on fresh scenes; then the "
                   "encoder is frozen and phase 2 trains the prompt encoder and mask decoder on "
                   "the cached embeddings of --pool scenes")
    p.add_argument("--pool", type=int, default=200, help="scenes encoded for phase 2")
    p.add_argument("--pool-start", type=int, default=None,
                   help="first training-stream scene of the pool (default: --encoder-steps)")
    p.add_argument("--init", default=None,
                   help="start from this checkpoint of the script (e.g. a second, phase-2 only "
                   "run: --init A.pth --encoder-steps 0 --pool-start <unseen scenes>)")
    p.add_argument("--stream-start", type=int, default=0,
                   help="first training-stream scene of phase 1 (a run continuing another: "
                   "past the scenes that run saw)")
    p.add_argument("--init-encoder", default=None,
                   help="take only the image encoder of this checkpoint (a new prompt encoder "
                   "and decoder; with --encoder-steps 0 the encoder stays frozen)")
    p.add_argument("--balance-sizes", nargs="?", const=[1.0, 1.0, 1.0, 1.0], default=None,
                   type=lambda v: [float(x) for x in v.split(",")],
                   metavar="W0,W1,W2,W3",
                   help="draw the prompted objects so that each size class (sides below 20, "
                   "40, 80 px and above, at 1024 input) gets its share of the prompts: equal "
                   "shares without a value (small and large objects are few in a scene)")
    p.add_argument("--pool-prompts", type=int, default=32, help="prompts per phase-2 step")
    p.add_argument("--crop", type=int, default=8,
                   help="smallest decoder window side, embedding cells (windows fit the object)")
    p.add_argument("--full-from", type=float, default=0.5,
                   help="full-map steps start after this fraction of the steps")
    p.add_argument("--full-frac", type=float, default=0.1,
                   help="from then on, the fraction of steps decoding the whole 64x64 map")
    p.add_argument("--full-prompts", type=int, default=8, help="prompts of a full-map step")
    p.add_argument("--far-cells", type=int, default=128,
                   help="cells sampled outside each window, standing for the rest of the map")
    p.add_argument("--pe-scale", type=float, default=2.0,
                   help="scale of the prompt encoder's random positional-encoding frequencies "
                   "(SAM: 1.0); higher frequencies let box corners localize in a short training")
    p.add_argument("--pe-axis", default=None, metavar="LO,HI", type=_lo_hi,
                   help="instead of random frequencies: axis-aligned ones, log-spaced from LO "
                   "to HI cycles per half side (e.g. 0.25,16)")
    p.add_argument("--no-tie-qk-init", dest="tie_qk_init", action="store_false",
                   help="do not start the decoder's cross attentions with keys = queries")
    p.add_argument("--tie-gain", type=float, default=1.5,
                   help="scale of the tied query/key projections at the start")
    p.add_argument("--val-every", type=int, default=0,
                   help="quick validation (2 scenes, H-Box) every N steps (0: only at the end)")
    p.add_argument("--encoder-dim", type=int, default=64)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup", type=int, default=40)
    p.add_argument("--clip", type=float, default=1.0, help="gradient norm clip")
    p.add_argument("--pixel-weight", type=float, default=1.0,
                   help="weight of the pixel (BCE) loss beside dice")
    p.add_argument("--no-bf16", dest="bf16", action="store_false",
                   help="train in fp32 (default: bf16 autocast on the CPU)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (fixed for reproducibility; 1 is robust on a shared "
                   "machine, where 2 threads of a busy CPU run far slower)")
    p.add_argument("--val-scenes", type=int, default=8, help="validation scenes at the end (0: none)")
    p.add_argument("--log-every", type=int, default=25)
    p.add_argument("--save-every", type=int, default=0,
                   help="also save the model every N steps to <out>.step<N>.pth (0: never)")
    p.add_argument("--out", default=DEFAULT_OUT, help="checkpoint path (.pth; + .json beside it)")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    init_meta = None
    if args.init or args.init_encoder:  # the run it continues (without its loss history)
        with open(os.path.splitext(args.init or args.init_encoder)[0] + ".json") as f:
            init_meta = {k: v for k, v in json.load(f).items() if k != "history"}
    t0, c0 = time.time(), time.process_time()
    trainer = Trainer(args)
    history = []
    run = {}
    phase2_setup = None
    for step in range(args.steps):
        if step == args.encoder_steps:
            phase2_setup = trainer.start_phase2()
            print("phase 2: encoder frozen, %d scenes encoded (%.0f s)"
                  % (len(trainer.pool), phase2_setup), flush=True)
        st = trainer.step(step)
        for k, v in st.items():
            run[k] = run.get(k, 0.0) + v
        run["n"] = run.get("n", 0) + 1
        if (step + 1) % args.log_every == 0 or step + 1 == args.steps:
            row = {k: round(v / run["n"], 4) for k, v in run.items() if k != "n"}
            row.update(step=step + 1, seconds=round(time.time() - t0, 1), lr=trainer.lr_at(step))
            history.append(row)
            print("step %(step)d  loss %(loss).4f  pixel %(pix).4f  dice %(dice).3f  "
                  "iou-mse %(iou).4f  train-IoU %(miou).3f (no mask prompt %(box_iou).3f)  "
                  "full %(full).2f  (%(seconds).0f s)" % row, flush=True)
            run = {}
        if args.save_every and (step + 1) % args.save_every == 0 and step + 1 < args.steps:
            save(trainer.sam, "%s.step%d.pth" % (os.path.splitext(args.out)[0], step + 1),
                 {"name": "samrs-tiny", "partial": step + 1, "args": vars(args)})
        if args.val_every and (step + 1) % args.val_every == 0 and step + 1 < args.steps:
            quick = evaluate(trainer.sam, validation_scenes(args.seed, 2), prompts=("hbox",))
            trainer.sam.train()
            print("  val %s" % quick, flush=True)
    train_seconds = time.time() - t0
    train_cpu = time.process_time() - c0
    val = {}
    if args.val_scenes:
        t = time.time()
        val = evaluate(trainer.sam, validation_scenes(args.seed, args.val_scenes),
                       prompts=("hbox", "cp", "rbox_m"))
        for k, v in val.items():
            print("val %-12s %s" % (k, v))
        print("(validation %.0f s)" % (time.time() - t))
    meta = {
        "name": "samrs-tiny",
        "note": ("A stand-in SAM trained on generated scenes (fiftyone_samrs.testing.scenes), "
                 "for demos and tests; not for real data."),
        "args": vars(args),
        "train_seconds": round(train_seconds, 1),
        "train_cpu_seconds": round(train_cpu, 1),
        "phase2_setup_seconds": None if phase2_setup is None else round(phase2_setup, 1),
        "init_run": init_meta,
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "torch": torch.__version__,
        "machine": platform.machine(),
        "commit": _git_commit(),
        "history": history,
        "validation": val,
    }
    size = save(trainer.sam, args.out, meta)
    print("saved %s (%.2f MB, %.1f min of training wall time, %.1f CPU-min)"
          % (args.out, size / 2**20, train_seconds / 60, train_cpu / 60))
    return 0


if __name__ == "__main__":
    sys.exit(main())
