"""Pure parsers of the source formats: files in, :mod:`fiftyone_samrs.records` out.

No FiftyOne import here.
"""
