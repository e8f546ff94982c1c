"""Bad input, through the real CLI: for each, exit status 2 (125 with --bisect), one line
`rig: error: ...` on stderr naming the option, no traceback, and nothing started or left:
no run directory, no cache, no results directory."""

import json
import os
import stat
import subprocess

import pytest
from conftest import run_rig

from rig.core import spec_json
from rig.core.spec import RunSpec
from rig.reports.reproducer import Inputs

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    (d / "a-file").write_text("x")
    (d / "not-exec").write_text("#!/bin/sh\n")
    old = d / "qemu-old"
    old.write_text("#!/bin/sh\necho 'QEMU emulator version 5.2.0'\n")
    x86_only = d / "qemu-x86-only"
    x86_only.write_text("#!/bin/sh\ncase $1 in -version) echo 'QEMU emulator version 11.1.3';;\n"
                        "-machine) echo 'Supported machines are:'; echo 'q35  Standard PC';; esac\n")
    for f in (old, x86_only):
        f.chmod(f.stat().st_mode | stat.S_IXUSR)
    bz = bytearray(0x400)
    bz[0x202:0x206] = b"HdrS"               # an x86 bzImage header
    (d / "bzImage").write_bytes(bytes(bz))
    (d / "moddir").mkdir()
    for name in ("tree", "tree2", "tree-configured"):        # the top of a kernel tree, to kconfig
        (d / name).mkdir()
        (d / name / "Kconfig").write_text("mainmenu \"Linux\"\n")
        (d / name / "Makefile").write_text("# Linux\n")
    (d / "tree-configured/.config").write_text("CONFIG_VFIO=y\n")
    gone = subprocess.Popen(["true"])       # a pid that was a process and is gone
    gone.wait()
    for name, text in (("stale-hold", json.dumps({"pid": gone.pid, "until": 0, "control": "/nonexistent",
                                                  "verdict": "PASS", "l1_port": 1, "l2_port": None,
                                                  "client_key": "/k", "host_key": "ssh-ed25519 AAAA"})),
                       ("torn-hold", "{\"pid\": 1")):
        (d / name).mkdir()
        (d / name / "held.json").write_text(text)
    spec = RunSpec("x86_64").validate()
    for name, files in (("recorded", {}), ("recorded-gone", {"kernel": d / "gone"})):
        (d / name).mkdir()
        Inputs("x86_64-ioapic-fixed-l2", "PASS", spec_json.to_json(spec), spec_json.to_argv(spec, files),
               {role: {"path": str(p), "sha256": "0" * 64} for role, p in files.items()}, {}, "0", "now"
               ).write(d / name)
    return d


RUN = ("run", "--arch", "x86_64")
PPC = ("run", "--arch", "ppc64")
PNV = PPC + ("--machine", "powernv")
# (arguments, what the one line must name); {f} is the directory of prepared files,
# {out} a results directory that must never be created.
CASES = [
    (("run", "--arch", "arm64"), "--arch arm64"),
    (RUN + ("--ic", "xive"), "--ic xive"),
    (PPC + ("--ic", "ioapic"), "--ic ioapic"),
    (PPC + ("--machine", "q35"), "--machine q35"),
    (RUN + ("--machine", "powernv"), "--machine powernv"),
    (PNV + ("--ic", "xics"), "--ic xics"),
    (PNV + ("--device", "pci-serial"), "no I/O space"),
    (PNV + ("--device", "pci-serial-2.3"), "no I/O space"),
    (PNV + ("--device", "legacy"), "qemu-pnv-phb4-vfio-user-hang.md"),
    (PNV + ("--device", "legacy-2.3"), "qemu-pnv-phb4-vfio-user-hang.md"),
    (PNV + ("--qemu", "{f}/qemu-x86-only"), "has no powernv9 machine"),
    (("boot", "--arch", "ppc64", "--machine", "powernv", "--accel", "kvm"), "runs only under TCG"),
    (("boot", "--arch", "ppc64", "--machine", "zseries"), "--machine zseries"),
    (RUN + ("--stall-window", "0"), "--stall-window 0"),     # was a wrong STALL on x86
    (RUN + ("--stall-window", "-1"), "--stall-window -1"),
    (RUN + ("--stall-window", "nan"), "--stall-window nan"),
    (RUN + ("--stall-window", "1e9"), "--stall-window 1e+09"),
    (RUN + ("--duration", "-5"), "--duration -5"),
    (RUN + ("--duration", "0"), "--duration 0"),
    (RUN + ("--duration", "inf"), "--duration inf"),
    (RUN + ("--duration", "1e12"), "--duration 1e+12"),
    (RUN + ("--duration", "soon"), "--duration"),
    (RUN + ("--duration", "3"), "shorter than --stall-window"),
    (RUN + ("--pass-after", "-1"), "--pass-after -1"),
    (RUN + ("--pass-after", "5"), "--pass-after 5"),
    (RUN + ("--pass-after", "99999999999"), "--pass-after 99999999999"),
    (RUN + ("--l1-smp", "0"), "--l1-smp 0"),
    (RUN + ("--confirm", "0"), "--confirm 0"),
    (RUN + ("--confirm", "1000"), "--confirm 1000"),
    (RUN + ("--l1-smp", "1000"), "--l1-smp 1000"),
    (RUN + ("--boot-timeout", "0"), "--boot-timeout 0"),
    (RUN + ("--boot-timeout", "-3"), "--boot-timeout -3"),
    (RUN + ("--out", "/proc/rig-results"), "--out /proc/rig-results"),
    (RUN + ("--out", "{f}/a-file"), "is not a directory"),
    (RUN + ("--out", "{f}/a-file/sub"), "is a file, not a directory"),
    (RUN + ("--qemu", "/bin/true"), "does not run as QEMU"),
    (RUN + ("--qemu", "{f}/no-such-qemu"), "--qemu"),
    (RUN + ("--qemu", "{f}/not-exec"), "not an executable file"),
    (RUN + ("--qemu", "{f}/qemu-old"), "too old"),
    (PPC + ("--qemu", "{f}/qemu-x86-only"), "has no pseries machine"),
    (RUN + ("--kernel", "{f}/no-such-kernel"), "--kernel"),
    (RUN + ("--kernel", "{f}/moddir"), "not a file"),
    (PPC + ("--kernel", "{f}/bzImage"), "not a ppc64 kernel"),
    (RUN + ("--modules", "{f}/moddir"), "goes with --kernel"),
    (RUN + ("--kernel", "{f}/bzImage", "--modules", "{f}/a-file"), "not a directory"),
    (RUN + ("--kernel", "{f}/bzImage", "--kernel-deb", "{f}/a-file"), "give one of them"),
    (RUN + ("--kernel", "{f}/bzImage", "--kernel-tree", "{f}/tree"), "give one of them"),
    (RUN + ("--kernel-tree", "{f}/no-such-tree"), "--kernel-tree"),
    (RUN + ("--kernel-tree", "{f}/moddir"), "no Kconfig and Makefile"),
    (RUN + ("--kernel-tree", "{f}/tree-configured"), "make mrproper"),
    (RUN + ("--kernel-tree", "{f}/tree", "--config", "{f}/no-such.config"), "--config"),
    (RUN + ("--kernel-tree", "{f}/tree", "--build-jobs", "0"), "--jobs 0"),
    (RUN + ("--kernel-tree", "{f}/tree", "--build-dir", "{f}/tree/build"), "inside the source tree"),
    (RUN + ("--kernel-tree", "{f}/tree", "--build-dir", "{f}/a-file"), "--build-dir"),
    (RUN + ("--config", "defconfig"), "--config goes with --kernel-tree"),
    (RUN + ("--build-dir", "{f}/moddir"), "--build-dir goes with --kernel-tree"),
    (RUN + ("--kernel-tree", "{f}/tree", "--l1-vfio", "unfixed"), "--l1-vfio unfixed"),
    (("matrix", "--kernel-tree", "{f}/moddir"), "no Kconfig and Makefile"),
    (("matrix", "--kernel-tree", "{f}/tree", "--kernel-tree", "{f}/tree"), "the same tree twice"),
    (("matrix", "--kernel-tree", "{f}/tree", "--kernel-tree", "{f}/moddir"), "no Kconfig and Makefile"),
    (("matrix", "--kernel-tree", "{f}/tree", "--kernel-tree", "{f}/tree2", "--build-dir", "{f}/moddir"),
     "with several --kernel-tree"),
    (("kernel", "build", "--arch", "arm64", "--tree", "{f}/tree"), "--arch arm64"),
    (("kernel", "build", "--arch", "ppc64", "--tree", "{f}/no-such-tree"), "--tree"),
    (("kernel", "build", "--arch", "ppc64", "--tree", "{f}/tree-configured"), "make mrproper"),
    (("kernel", "build", "--arch", "ppc64"), "--tree"),
    (RUN + ("--kernel-deb", "{f}/a-file"), "not a .deb"),
    (RUN + ("--kernel", "{f}/bzImage", "--l1-vfio", "unfixed"), "--l1-vfio unfixed"),
    (RUN + ("--consumer", "userspace", "--l2-accel", "kvm"), "no L2 in fast mode"),
    (RUN + ("--device", "warp"), "--device"),
    (RUN + ("--scenario", "stampede"), "--scenario stampede"),
    (RUN + ("--scenario", "masked-pending"), "add --consumer userspace"),   # L2 drives the flow only
    (RUN + ("--consumer", "userspace", "--scenario", ""), "--scenario"),
    (RUN + ("--consumer", "userspace", "--scenario", "exclusive", "--device", "legacy"), "no twin"),
    (RUN + ("--consumer", "userspace", "--scenario", "l2-reboot"), "use --consumer l2"),
    (RUN + ("--frobnicate",), "--frobnicate"),
    (("matrix", "--repeat", "0"), "--repeat 0"),      # was a green run of nothing
    (("matrix", "--repeat", "-1"), "--repeat -1"),
    (("matrix", "--jobs", "0"), "--jobs 0"),
    (("matrix", "--jobs", "many"), "--jobs -1"),
    (("matrix", "--shard", "4/3"), "--shard 4/3"),
    (("matrix", "--shard", "half"), "--shard half"),
    (("matrix", "--shard", "40/40"), "this shard has no cell"),
    (("matrix", "--cells", "nothing-*"), "no runnable cell matches"),
    (("matrix", "--cells", "ppc64-*,,x86*"), "an empty pattern"),
    (("matrix", "--duration", "0"), "--duration 0"),
    (("matrix", "--out", "/proc/rig-matrix"), "--out /proc/rig-matrix"),
    (("boot", "--arch", "x86_64", "--timeout", "0"), "--timeout 0"),
    (("boot", "--arch", "x86_64", "--accel", "warp"), "--accel"),
    (("boot", "--arch", "x86_64", "--command", " "), "--command"),
    (("boot", "--arch", "x86_64", "--kernel", "{f}/no-such-kernel"), "--kernel"),
    (("build", "--arch", "arm64"), "--arch arm64"),
    (("setup", "--arch", "arm64"), "--arch arm64"),
    (("finding-intx-probe", "--out", "{f}/a-file"), "--out"),
    (RUN + ("--hold", "0"), "--hold 0"),
    (RUN + ("--hold", "--confirm", "3"), "--hold with --confirm 3"),
    (RUN + ("--detach",), "--detach without --hold"),
    (("ssh", "{f}/no-such-run", "l1"), "no such results directory"),
    (("ssh", "{f}", "l1", "true"), "chain is not held (no held.json)"),
    (("ssh", "{f}", "l3"), "l3"),
    (("monitor", "{f}", "l0", "info", "pic"), "chain is not held (no"),
    (("monitor", "{f}/stale-hold", "l0"), "not held any more"),
    (("ssh", "{f}/torn-hold", "l1"), "not a record of a chain held"),
    (("stop", "{f}"), "chain is not held (no"),
    (("stop", "{f}/stale-hold"), "not held any more"),
    (("rerun", "{f}/no-such-run"), "no such results directory"),
    (("rerun", "{f}"), "no inputs.json"),
    (("rerun", "{f}/recorded", "--repeat", "0"), "--repeat 0"),
    (("rerun", "{f}/recorded-gone"), "the file the run used is not here"),
]


def check_one_line_error(r, needle, status=2):
    assert "Traceback" not in r.stderr, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == status, r.stderr
    assert len(lines) == 1 and lines[0].startswith("rig: error: "), r.stderr
    assert needle in lines[0], lines[0]


@pytest.mark.parametrize("args,needle", CASES, ids=[" ".join(a) for a, _ in CASES])
def test_bad_input_is_one_line_and_starts_nothing(args, needle, files, short_tmp):
    out, cache, run_dir = short_tmp / "out", short_tmp / "cache", short_tmp / "run"
    argv = [a.format(f=files) for a in args]
    if "--out" not in argv and argv[0] in ("run", "matrix", "boot"):
        argv += ["--out", str(out)]
    r = run_rig(*argv, cache=cache, env={"RIG_RUN_DIR": str(run_dir)}, timeout=60)
    check_one_line_error(r, needle)
    assert not out.exists() and not cache.exists(), "bad input left files behind"
    assert not (run_dir / "intx-rig").exists() or not os.listdir(run_dir / "intx-rig")


def test_bad_input_under_bisect_is_skip(short_tmp):
    """`git bisect run` must skip a commit the rig cannot judge, not stop the bisection."""
    r = run_rig("--bisect", "run", "--arch", "x86_64", "--duration", "-5", cache=short_tmp / "c")
    check_one_line_error(r, "--duration -5", status=125)
    r = run_rig("--bisect", "run", "--arch", "x86_64", "--warp", cache=short_tmp / "c")
    check_one_line_error(r, "--warp", status=125)


def test_there_are_thirty_or_more_cases():
    assert len(CASES) >= 30
