"""A KTAP version 1 reader written from the specification (the kernel's
Documentation/dev-tools/ktap.rst), apart from the rig's writer, to check what it writes:
version lines, plans, result lines with their numbering and directives, diagnostic lines,
subtests indented two spaces a level. Strict: anything off raises KtapError."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

RESULT = re.compile(r"^(ok|not ok) (\d+)(?: ([^#]*?))?\s*(?:#\s*(.*))?$")
DIRECTIVES = ("SKIP", "TODO", "XFAIL", "TIMEOUT", "ERROR")


class KtapError(ValueError):
    pass


@dataclass
class Test:
    number: int
    name: str
    ok: bool
    directive: str | None = None
    data: str = ""
    diagnostics: list[str] = field(default_factory=list)
    subtests: list[Test] = field(default_factory=list)


def parse(text: str) -> list[Test]:
    lines = text.splitlines()
    tests, end = _document(lines, 0, 0)
    if any(line.strip() for line in lines[end:]):
        raise KtapError(f"text after the document at line {end + 1}: {lines[end]!r}")
    return tests


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _document(lines: list[str], i: int, indent: int) -> tuple[list[Test], int]:
    pad = " " * indent
    if i >= len(lines) or lines[i] != pad + "KTAP version 1":
        raise KtapError(f"line {i + 1}: expected {pad}KTAP version 1, got {lines[i] if i < len(lines) else 'EOF'!r}")
    m = re.fullmatch(pad + r"1\.\.(\d+)", lines[i + 1] if i + 1 < len(lines) else "")
    if not m:
        raise KtapError(f"line {i + 2}: expected a plan 1..N")
    planned, i = int(m.group(1)), i + 2
    tests: list[Test] = []
    diags: list[str] = []
    subtests: list[Test] = []
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
            continue
        if _indent(line) < indent:
            break
        if _indent(line) > indent:
            if line.strip() != "KTAP version 1" or _indent(line) != indent + 2:
                raise KtapError(f"line {i + 1}: a subtest must open with KTAP version 1, two spaces deeper")
            subtests, i = _document(lines, i, indent + 2)
            continue
        body = line[indent:]
        if body.startswith("#"):
            diags.append(body[1:].strip())
            i += 1
            continue
        r = RESULT.match(body)
        if not r:
            raise KtapError(f"line {i + 1}: not a KTAP line: {line!r}")
        number = int(r.group(2))
        if number != len(tests) + 1:
            raise KtapError(f"line {i + 1}: test number {number}, expected {len(tests) + 1}")
        directive, data = None, (r.group(4) or "").strip()
        if data.split(" ", 1)[0] in DIRECTIVES:
            directive, _, data = data.partition(" ")
        if directive in ("ERROR", "TIMEOUT") and r.group(1) == "ok":
            raise KtapError(f"line {i + 1}: {directive} must be 'not ok'")
        tests.append(Test(number, (r.group(3) or "").strip(), r.group(1) == "ok", directive, data, diags, subtests))
        diags, subtests = [], []
        i += 1
    if len(tests) != planned:
        raise KtapError(f"planned {planned} tests, found {len(tests)}")
    if subtests:
        raise KtapError("subtests without the result line of their parent")
    return tests, i
