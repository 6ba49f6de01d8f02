"""Stage 3: measuring masks.

:mod:`.evaluation` (mIoU_I / mIoU_P against ground truth), :mod:`.quality`
(signals where there is none), :mod:`.qa` (saved views for the App),
:mod:`.study` (the paper's prompt study) and :mod:`.plots`.
"""
