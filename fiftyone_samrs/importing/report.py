"""Import reports kept in ``dataset.info["samrs"]``.

The importers store their :class:`~fiftyone_samrs.core.records.ImportReport` there
as a dict (``import_report``; ``isaid_report`` for iSAID masks):
:func:`report_to_dict` makes it, :func:`import_report` reads it back.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Dict, Optional

import fiftyone as fo

from fiftyone_samrs.core.records import ImportReport
from fiftyone_samrs.core.text import plural


def report_to_dict(report: ImportReport, max_messages: int = 1000,
                   source: Optional[Dict[str, int]] = None) -> Dict[str, Any]:
    """JSON-friendly form of an :class:`ImportReport` (stored in ``dataset.info``).

    Args:
        report: the report
        max_messages: how many messages to keep (``num_messages`` has the total)
        source: for tiled imports, ``{"source_images", "source_objects"}``
            the parser read (``images``/``objects`` are the tiles written)
    """
    summary = report.summary()
    d = {
        "images": report.images,
        "objects": report.objects,
        "skipped": dict(report.skipped),
        "warnings": dict(report.warned),
        "messages": report.messages[:max_messages],
        "num_messages": len(report.messages),
        "info": dict(report.info),
    }
    if source:
        d.update(source)
        first, _, rest = summary.partition("\n")
        summary = "%s (tiles of %s with %s)%s" % (
            first, plural(source["source_images"], "source image"),
            plural(source["source_objects"], "object"), "\n" + rest if rest else "")
    d["summary"] = summary
    return d


def update_samrs_info(dataset: fo.Dataset, values: Dict[str, Any]) -> None:
    """Updates ``dataset.info["samrs"]`` with ``values`` (the caller saves)."""
    info = dict(dataset.info)
    samrs = dict(info.get("samrs") or {})
    samrs.update(values)
    info["samrs"] = samrs
    dataset.info = info


def import_report(dataset: fo.Dataset, key: str = "import_report") -> ImportReport:
    """The :class:`ImportReport` of the last import into ``dataset``, from its info.

    Args:
        dataset: a dataset imported by :mod:`fiftyone_samrs.importing.importers`
        key: ``"import_report"`` or ``"isaid_report"``
    """
    d = (dataset.info.get("samrs") or {}).get(key)
    if d is None:
        raise ValueError("Dataset %r has no samrs %s" % (dataset.name, key))
    return ImportReport(images=d["images"], objects=d["objects"],
                        skipped=Counter(d["skipped"]), warned=Counter(d["warnings"]),
                        messages=list(d["messages"]), info=dict(d.get("info") or {}))
