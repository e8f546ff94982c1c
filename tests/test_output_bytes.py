"""Output that survives any bytes: a console can print anything, and its tail reaches the
verdict's reason. With all 256 byte values (as a console decodes them) and a lone
surrogate in it, junit.xml parses as XML, results.ktap as KTAP (one line per result),
result.json as JSON with the same reason, and report.html is UTF-8 with no control
character; what a format cannot hold is shown escaped, not lost."""

import json
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import ROOT
from ktap_reader import parse

from rig.chain.verdict import Verdict
from rig.core.kinds import Outcome
from rig.reports.html import write_run_report
from rig.reports.ktap import write_run as write_ktap
from rig.reports.result import RunResult, write_run_junit

pytestmark = pytest.mark.unit

EVERY_BYTE = bytes(range(256)).decode("latin-1") + "\udcff"
RECORDED = ROOT / "tests" / "data" / "result-ppc64-xive-unfixed-userspace.json"


@pytest.mark.parametrize("outcome", [Outcome.STALL, Outcome.ERROR])
def test_every_byte_in_a_reason_keeps_every_output_valid(tmp_path, outcome):
    r = RunResult.from_json(json.loads(RECORDED.read_text()))
    r = replace(r, verdict=Verdict(outcome, f"console said: {EVERY_BYTE} (end)", r.verdict.stopped_at))
    r.write(tmp_path)
    assert json.loads((tmp_path / "result.json").read_text())["verdict"]["reason"] == r.verdict.reason
    write_run_junit(tmp_path, r.name + "\x1b[31m", r.verdict, r.seconds, f"logs in {tmp_path}\x00")
    suite = ET.parse(tmp_path / "junit.xml").getroot()            # raises on invalid XML
    text = ET.tostring(suite, encoding="unicode")
    assert "\\x1b" in text and "\\x00" in text and "(end)" in text
    write_ktap(tmp_path, r)
    ktap = (tmp_path / "results.ktap").read_text()
    tests = parse(ktap)
    assert len(tests) == 1 and not tests[0].ok
    assert all(ch == "\n" or ch.isprintable() for ch in ktap), "a control character in results.ktap"
    write_run_report(tmp_path, r)
    page = Path(tmp_path / "report.html").read_bytes().decode("utf-8")     # raises on a bad encoding
    assert not [c for c in page if ord(c) < 0x20 and c not in "\t\n\r"], "a control character in report.html"
    assert "\\x07" in page and "(end)" in page
