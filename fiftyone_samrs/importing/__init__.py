"""Stage 1: source folders into FiftyOne datasets.

:mod:`.importers` (``load_dota``... and the FiftyOne importer classes) runs a
format's scanner (:mod:`fiftyone_samrs.formats`), optionally through
:mod:`.tiling`, and bulk-inserts the records (:mod:`.sample_docs`);
:mod:`.isaid_gt` attaches iSAID ground-truth masks; :mod:`.report` keeps the
import report on the dataset.
"""
