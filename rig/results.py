"""Result files of a run: result.json and junit.xml (the picture: rig.timeline)."""

from __future__ import annotations

import json
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from .verdict import Verdict, describe_stop

def write_result_json(out: Path, data: dict) -> Path:
    p = out / "result.json"
    p.write_text(json.dumps(data, indent=1, default=str))
    return p


def write_junit(out: Path, name: str, verdict: Verdict, seconds: float, log_hint: str) -> Path:
    body = ""
    if verdict.verdict == "STALL":
        body = f'<failure message={quoteattr(describe_stop(verdict))}>{escape(verdict.reason)}</failure>'
    elif verdict.verdict == "ERROR":
        body = f'<error message={quoteattr(verdict.reason)}>{escape(log_hint)}</error>'
    xml = ('<?xml version="1.0" encoding="UTF-8"?>\n'
           f'<testsuite name="intx-rig" tests="1" failures="{int(verdict.verdict == "STALL")}" '
           f'errors="{int(verdict.verdict == "ERROR")}" time="{seconds:.1f}">\n'
           f'  <testcase classname="intx-rig" name={quoteattr(name)} time="{seconds:.1f}">{body}'
           f'<system-out>{escape(verdict.verdict + ": " + verdict.reason)}</system-out></testcase>\n'
           '</testsuite>\n')
    p = out / "junit.xml"
    p.write_text(xml)
    return p
