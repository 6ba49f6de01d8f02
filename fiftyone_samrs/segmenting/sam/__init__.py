"""The Segment Anything engine: model loading (:mod:`.models`, :mod:`.tiny`),
encode-once / decode-many (:mod:`.engine`), fused encoder attention and
regional compilation (:mod:`.attention`), the fast exact mask decoder
(:mod:`.decoder`) and region-only post-processing (:mod:`.upsample`).

Submodules import torch; import them explicitly.
"""
