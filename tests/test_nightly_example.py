"""The example nightly workflow (.github/workflows/nightly.yml) keeps its hygiene: every
action pinned by a full commit (a moved tag changes nothing), the cache never carrying the
SSH keys, the matrix's report page and tally uploaded."""

import re

import pytest
from conftest import ROOT

pytestmark = pytest.mark.unit

WORKFLOW = (ROOT / ".github" / "workflows" / "nightly.yml").read_text()


def test_every_action_is_pinned_by_commit():
    uses = re.findall(r"uses:\s*(\S+)", WORKFLOW)
    assert uses and all(re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", u) for u in uses), uses


def test_the_cache_leaves_the_keys_out():
    cache = WORKFLOW[WORKFLOW.index("actions/cache@"):]
    assert "~/.cache/intx-rig\n" in cache and "!~/.cache/intx-rig/keys" in cache


def test_the_report_page_and_tally_are_uploaded():
    assert "/report.html" in WORKFLOW and "/tally.json" in WORKFLOW and "--hold-unexpected" in WORKFLOW
