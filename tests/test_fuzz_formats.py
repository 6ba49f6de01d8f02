"""Fuzzing every parser with mutated valid files (hypothesis, bounded in time).

Each case generates a valid file (DOTA txt, DIOR HBB/OBB XML, FAIR1M XML, HRSC
XML, iSAID PNG pair, ImageSets split files), mutates it (hostile numbers,
token/line/element deletion and duplication, encodings, truncation, tag
renames, unwrapped containers, entity declarations, PNG byte damage, JPEG
round trips, wrong sizes) and checks that the outcome is a parsed record set
with finite values, a FormatError naming the file, or a counted skip or
warning: never another exception, never NaN/inf stored, never an object
element dropped with nothing counted (see ``tests/fuzz_mutations.py``).

The offline campaign (thousands of cases per parser, with the outcome table)
is ``scripts/fuzz_formats.py``; ``SAMRS_SLOW_TESTS=1`` adds a larger seeded
sample here (marked ``slow``).
"""

import os
import random
import tempfile

import fuzz_mutations as fm
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

#: examples per parser in the default run: a few seconds each
EXAMPLES = 150

_FAST = settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow])


def _check(name: str, rng: random.Random, mutated: bool = True) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        outcome, detail = fm.CASES[name](rng, tmp, mutated)
    assert outcome in fm.ACCEPTED, "%s: %s (%s)" % (name, outcome, detail)
    return outcome


@pytest.mark.parametrize("name", sorted(fm.CASES))
def test_generated_files_are_valid(name):
    """The unmutated fixtures parse cleanly: the mutations start from valid files."""
    for seed in range(20):
        assert _check(name, random.Random(seed), mutated=False) == "parsed"


@_FAST
@given(rng=st.randoms(use_true_random=False))
def test_fuzz_dota_txt(rng):
    _check("DOTA txt", rng)


@_FAST
@given(rng=st.randoms(use_true_random=False))
def test_fuzz_dior_hbb_xml(rng):
    _check("DIOR XML (HBB)", rng)


@_FAST
@given(rng=st.randoms(use_true_random=False))
def test_fuzz_dior_obb_xml(rng):
    _check("DIOR-R XML (OBB)", rng)


@_FAST
@given(rng=st.randoms(use_true_random=False))
def test_fuzz_fair1m_xml(rng):
    _check("FAIR1M XML", rng)


@_FAST
@given(rng=st.randoms(use_true_random=False))
def test_fuzz_hrsc_xml(rng):
    _check("HRSC XML", rng)


@_FAST
@given(rng=st.randoms(use_true_random=False))
def test_fuzz_isaid_png_pair(rng):
    _check("iSAID PNG pair", rng)


@settings(max_examples=EXAMPLES // 2, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(rng=st.randoms(use_true_random=False))
def test_fuzz_imagesets_files(rng):
    _check("ImageSets files", rng)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("SAMRS_SLOW_TESTS"), reason="set SAMRS_SLOW_TESTS=1")
@pytest.mark.parametrize("name", sorted(fm.CASES))
def test_fuzz_campaign_sample(name):
    """500 seeded cases per parser (``-m slow``); the full campaign is the script."""
    for seed in range(500):
        _check(name, random.Random(seed))
