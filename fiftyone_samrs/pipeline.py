"""0.1.0's module of the stored segment-run classes (not SDK).

FiftyOne records run classes by their full path; datasets segmented with
0.1.0 name ``fiftyone_samrs.pipeline.SegmentRunConfig``. Importing this
module (which FiftyOne does only to load such a run) gives the module that
defines the classes now, :mod:`fiftyone_samrs.segmenting.runs`.
"""

import sys

from fiftyone_samrs.segmenting import runs as _runs

sys.modules[__name__] = _runs
