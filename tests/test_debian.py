import pytest

from rig.debian.apt import DebPackage, first_dependency, parse_simulated_installs, parse_stanzas

pytestmark = pytest.mark.unit

SIMULATE = """\
NOTE: This is only a simulation!
Inst gcc-12-base (12.2.0-14+deb12u1 Debian:12.15/oldstable [ppc64el])
Inst libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [ppc64el]) []
Inst libudev1 (254.26-1~bpo12+1 Debian Backports:oldstable-backports [ppc64el])
Inst qemu-system-data (1:10.0.2+ds-2 Debian Backports:stable-backports [all])
Conf libc6 (2.36-9+deb12u14 Debian:12.15/oldstable [ppc64el])
"""


def test_simulated_installs_give_name_version_arch():
    assert parse_simulated_installs(SIMULATE) == [
        ("gcc-12-base", "12.2.0-14+deb12u1", "ppc64el"),
        ("libc6", "2.36-9+deb12u14", "ppc64el"),
        ("libudev1", "254.26-1~bpo12+1", "ppc64el"),
        ("qemu-system-data", "1:10.0.2+ds-2", "all"),
    ]


def test_stanzas_fold_continuation_lines():
    text = "Package: a\nVersion: 1\nDescription: x\n more\n\nPackage: b\nVersion: 2\n"
    st = parse_stanzas(text)
    assert [s["Package"] for s in st] == ["a", "b"]
    assert st[0]["Description"] == "x\nmore"


@pytest.mark.parametrize("depends, name", [
    ("linux-image-6.12.95+deb12-amd64 (= 6.12.95-1~bpo12+1)", "linux-image-6.12.95+deb12-amd64"),
    ("a | b, c", "a"),
    ("libc6:any (>= 2.3)", "libc6"),
])
def test_first_dependency(depends, name):
    assert first_dependency(depends) == name


def test_deb_name_comes_from_the_archive_filename_without_epoch():
    p = DebPackage("busybox-static", "1:1.35.0-4", "amd64",
                   "pool/main/b/busybox/busybox-static_1.35.0-4_amd64.deb", "00", 1)
    assert p.deb_name == "busybox-static_1.35.0-4_amd64.deb"
    assert DebPackage.from_json(p.to_json()) == p
