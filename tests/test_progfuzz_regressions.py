"""Bugs found by the program-level fuzzer (tests/progfuzz.py), one minimal program each.

An open bug is an xfail(strict=True): when it is fixed the test XPASSes and fails, so the fix
flips it (set the bug's status in progfuzz.KNOWN_DIVERGENCES to "fixed in …", and re-enable
the generator features CI_DISABLED names for it). Fixed bugs stay as ordinary regression tests.
"""

from __future__ import annotations

import pytest
from progfuzz import KNOWN_DIVERGENCES, reproduce


def _param(bug):
    marks = [pytest.mark.xfail(strict=True, reason=f"open: {bug.title}")] if bug.is_open else []
    return pytest.param(bug, id=bug.id, marks=marks)


@pytest.mark.parametrize("bug", [_param(b) for b in KNOWN_DIVERGENCES])
def test_known_divergence(bug):
    problems = reproduce(bug)
    assert not problems, f"{bug.id} ({bug.wrong} is wrong):\n" + "\n\n".join(problems)


def test_known_divergences_are_distinct_and_documented():
    ids = [b.id for b in KNOWN_DIVERGENCES]
    assert len(ids) == len(set(ids))
    for b in KNOWN_DIVERGENCES:
        assert b.check in ("split", "no_crash", "v1model_drop", "accepts", "delivers", "bmv2_push")
        assert b.title and b.wrong
        assert b.status == "open" or b.status.startswith("fixed in ")


def test_switched_off_features_name_open_bugs():
    """Every feature the CI runs switch off (and every relaxed comparison) names an open bug."""
    from progfuzz import CI_DISABLED, CI_RELAXED, FEATURES

    open_ids = {b.id for b in KNOWN_DIVERGENCES if b.is_open}
    for feat, bug in CI_DISABLED.items():
        assert feat in FEATURES and bug in open_ids, (feat, bug)
    for check, bug in CI_RELAXED.items():
        assert bug in open_ids, (check, bug)
