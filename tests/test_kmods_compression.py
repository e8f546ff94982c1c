"""Modules as kernels ship them: uncompressed (a kernel build), xz (Debian), gzip, zstd
(Ubuntu, Fedora); the guest always gets the ELF."""

import gzip
import lzma

import pytest
import zstandard

from guest_images.kmods import read_module
from rig.core.errors import UserError

pytestmark = pytest.mark.unit

ELF = b"\x7fELF" + bytes(range(256)) * 64     # stands for a module's bytes


@pytest.mark.parametrize("suffix,compress", [
    ("", lambda b: b),
    (".xz", lzma.compress),
    (".gz", gzip.compress),
    (".zst", lambda b: zstandard.ZstdCompressor().compress(b)),
])
def test_every_format_gives_the_module_back(tmp_path, suffix, compress):
    path = tmp_path / f"vfio-pci-core.ko{suffix}"
    path.write_bytes(compress(ELF))
    assert read_module(path) == ELF


def test_a_damaged_module_is_named_in_one_line(tmp_path):
    path = tmp_path / "vfio-pci.ko.zst"
    path.write_bytes(b"not zstd at all")
    with pytest.raises(UserError, match=r"module .*vfio-pci.ko.zst: cannot decompress it"):
        read_module(path)
