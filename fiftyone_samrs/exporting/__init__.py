"""Stage 4: what training code reads.

The SAMRS layout (:mod:`.samrs_export`, and :mod:`.samrs_import` to load it
back), COCO instance JSON (:mod:`.coco_export`, :mod:`.coco_rle`), the colour
palette (:mod:`.palette`) and the pieces they share (:mod:`.common`).
"""
