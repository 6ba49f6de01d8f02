"""Not SDK: generated source trees with known masks, for the tests, the demo
and the benchmarks (:mod:`.synthetic`).
"""
