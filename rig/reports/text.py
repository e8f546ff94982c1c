"""Text from anywhere (a console's tail, a kernel's message, a path) made safe for the
formats the rig writes: XML 1.0 allows no control character but tab and newlines, KTAP
wants one line per result, and nothing may hold a lone surrogate that UTF-8 cannot encode.
What is not allowed is shown escaped (\\x1b), never dropped: it may be the clue."""

from __future__ import annotations

import re

# XML 1.0's Char production, negated: C0 controls but tab, LF and CR; surrogates; U+FFFE/F.
NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _escaped(ch: str) -> str:
    c = ord(ch)
    return f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}"


def _escape(m: re.Match[str]) -> str:
    return _escaped(m.group(0))


def xml_text(text: str) -> str:
    """text with what XML 1.0 cannot hold escaped."""
    return NOT_XML.sub(_escape, text)


def one_line(text: str) -> str:
    """text on one line: whitespace runs become one space, anything else not printable
    (controls, format characters, surrogates) is escaped."""
    return "".join(c if c.isprintable() else _escaped(c) for c in " ".join(text.split()))

