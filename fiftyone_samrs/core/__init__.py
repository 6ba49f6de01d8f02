"""Pure building blocks shared by every stage: class lists, geometry, plain
records, instance masks, metrics and semantic painting.

No FiftyOne import here.
"""
