"""Verbs of the ``samrs`` command line, one module each (see :mod:`fiftyone_samrs.tools.cli`)."""
