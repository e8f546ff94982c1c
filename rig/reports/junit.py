"""JUnit XML, one writer for a run and for the matrix: a suite of cases, each passed,
failed (a STALL, or a verdict the matrix did not expect) or in error (the machinery),
built with ElementTree so that any text is escaped the one correct way."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from rig.reports.text import xml_text


@dataclass(frozen=True)
class JunitCase:
    name: str
    seconds: float | None = None
    failure: tuple[str, str] | None = None    # (message, text)
    error: tuple[str, str] | None = None      # (message, text)
    output: str = ""                          # system-out


def write_junit(path: Path, suite: str, classname: str, cases: list[JunitCase]) -> Path:
    """Every name, message and text through xml_text: a console's control characters would
    make the file invalid XML that a CI system refuses whole."""
    root = ET.Element("testsuite", name=xml_text(suite), tests=str(len(cases)),
                      failures=str(sum(1 for c in cases if c.failure)),
                      errors=str(sum(1 for c in cases if c.error)))
    total = sum(c.seconds or 0.0 for c in cases)
    if any(c.seconds is not None for c in cases):
        root.set("time", f"{total:.1f}")
    for c in cases:
        case = ET.SubElement(root, "testcase", classname=xml_text(classname), name=xml_text(c.name))
        if c.seconds is not None:
            case.set("time", f"{c.seconds:.1f}")
        for tag, what in (("failure", c.failure), ("error", c.error)):
            if what:
                ET.SubElement(case, tag, message=xml_text(what[0])).text = xml_text(what[1])
        if c.output:
            ET.SubElement(case, "system-out").text = xml_text(c.output)
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="UTF-8", xml_declaration=True)
    return path
