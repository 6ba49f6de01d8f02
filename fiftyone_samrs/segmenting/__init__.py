"""Stage 2: masks from boxes.

:mod:`.pipeline` (``segment``) runs a backend (:mod:`.backends`: the SAM
engine of :mod:`.sam`, or the :mod:`.baselines`) over a FiftyOne view with
the prompts of :mod:`.prompts`, and writes instance masks and SAMRS PNGs.
"""
