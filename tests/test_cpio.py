import io
import os

import pytest

from guest_images.cpio import CpioWriter, read_names

pytestmark = pytest.mark.unit


def test_tree_and_nodes_round_trip(tmp_path):
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin/busybox").write_bytes(b"\x7fELF" + b"x" * 13)
    (tmp_path / "bin/sh").symlink_to("busybox")
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    buf = io.BytesIO()
    w = CpioWriter(buf)
    w.add_chardev("dev/console", 5, 1)
    w.add_tree(tmp_path)
    w.finish()
    data = buf.getvalue()
    assert len(data) % 512 == 0
    assert read_names(data) == ["dev", "dev/console", "bin", "etc", "bin/busybox", "bin/sh",
                                "etc/passwd"]


def test_header_fields_are_newc(tmp_path):
    buf = io.BytesIO()
    w = CpioWriter(buf)
    w.add_file("init", b"#!/bin/sh\n", 0o755)
    w.finish()
    head = buf.getvalue()[:110]
    assert head[:6] == b"070701"
    mode = int(head[14:22], 16)
    assert mode == 0o100755
    assert int(head[22:30], 16) == 0 and int(head[30:38], 16) == 0  # root:root


def test_is_reproducible(tmp_path):
    (tmp_path / "a").write_text("1")
    os.utime(tmp_path / "a", (1, 1))
    outs = []
    for _ in range(2):
        buf = io.BytesIO()
        w = CpioWriter(buf)
        w.add_tree(tmp_path)
        w.finish()
        outs.append(buf.getvalue())
    assert outs[0] == outs[1]
