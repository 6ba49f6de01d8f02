"""Pure parsers of the source formats: files in, :mod:`fiftyone_samrs.core.records` out.

No FiftyOne import here.
"""
