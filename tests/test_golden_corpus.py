"""Results are bitwise what they were before the engine refactor (see golden_corpus.py)."""
import json


import rnnkit
from golden_corpus import DIGESTS, compute


def test_every_result_matches_the_recorded_bits():
    with open(DIGESTS) as f:
        recorded = json.load(f)["digests"]
    levels = rnnkit.build_info()["simd_available"]
    got = compute(levels)
    expected = {k: v for k, v in recorded.items() if k.split("/", 1)[0] in levels}
    assert expected, f"no recorded digests for the SIMD levels {levels}"
    missing = sorted(set(expected) - set(got))
    assert not missing, f"{len(missing)} recorded results no longer produced, e.g. {missing[:5]}"
    changed = sorted(k for k in expected if got[k] != expected[k])
    assert not changed, (f"{len(changed)} of {len(expected)} results changed bits, e.g. "
                         f"{changed[:8]}")
