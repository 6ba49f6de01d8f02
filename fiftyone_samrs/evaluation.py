"""0.1.0's module of the stored evaluation classes (not SDK).

Datasets evaluated with 0.1.0 name ``fiftyone_samrs.evaluation.
SamrsEvaluationConfig`` / ``SamrsEvaluationResults``; importing this module
(which FiftyOne does only to load such a run) gives the module that defines
them now, :mod:`fiftyone_samrs.evaluating.evaluation`.
"""

import sys

from fiftyone_samrs.evaluating import evaluation as _evaluation

sys.modules[__name__] = _evaluation
