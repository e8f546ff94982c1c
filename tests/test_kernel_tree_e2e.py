"""From a kernel source tree to verdicts, for real: Debian's linux-source-6.12 tree, unpacked
as a user would have it, built with the rig's minimal configuration for both arches (cross
for ppc64), then run in one nested cell per machine and a fast one, and a `git bisect run`
over a small history made from that tree, with real incremental builds, on ppc64 XIVE; and
the tree built with --coverage for one scenario run's line coverage of the INTx code.

One test, in steps that build on each other (the builds, then runs of what was built, then a
bisect in the same build directories), so that one worker does it all in order. The tree and
its build directories are in a temporary directory, removed at the end (about 4 GB meanwhile).
Cost on 2 cores: two minimal builds of about 5 minutes each, the runs, and the bisect steps
(docs/measurements.md).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from conftest import ROOT, load_result, run_rig

from guest_images.build import kernel_package
from guest_images.recipe import guest_packages, kbuild_host_packages
from rig.core.cache import Cache
from rig.core.progress import Progress
from rig.core.targets import PROFILES
from rig.debian.packages import Resolver
from rig.host.profiles import host_profile

pytestmark = pytest.mark.e2e

FIX_LINES = re.compile(r"\t+if \(!vdev->pci_2_3\)\n\t+irq_(set|clear)_status_flags\(pdev->irq, IRQ_DISABLE_UNLAZY\);\n")
INTRS = "drivers/vfio/pci/vfio_pci_intrs.c"
BUILD_S = 3600


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), "-c", "user.email=rig@example.invalid", "-c", "user.name=rig",
                           *args], check=True, capture_output=True, text=True, timeout=900).stdout.strip()


@pytest.fixture
def work(rig_cache_dir):
    d = Path(tempfile.mkdtemp(prefix="rig-ktree-", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def tree(rig_cache_dir, work) -> Path:
    """linux-source-6.12 from Debian's archive (the rig's pinned package set), unpacked the
    way its README says: `tar xaf /usr/src/linux-source-6.12.tar.xz`."""
    cache = Cache(rig_cache_dir)
    res = Resolver(cache, Progress(quiet=True))
    prof = PROFILES["x86_64"]
    kver = kernel_package(res.lock(guest_packages(prof)), prof).name.removeprefix("linux-image-")
    pset = kbuild_host_packages(prof, kver, host_profile())
    deb = next(p for n, p in res.fetch(pset, res.lock(pset)).items() if n.startswith("linux-source-"))
    subprocess.run(f"dpkg-deb --fsys-tarfile {deb} | tar -x -C {work} --wildcards '*.tar.xz'", shell=True,
                   check=True, timeout=600)
    tarball = next((work / "usr/src").glob("linux-source-*.tar.xz"))
    subprocess.run(["tar", "xaf", str(tarball), "-C", str(work)], check=True, timeout=900)
    shutil.rmtree(work / "usr")
    return next(work.glob("linux-source-*"))


def build_dir(work: Path, arch: str) -> Path:
    return work / "build" / arch


def test_source_tree_to_verdicts_and_a_bisect(tree, work, rig_cache_dir, short_tmp):
    # Rebuilding is the same for both arches: checked on the one the bisect rebuilds.
    for arch, rebuilds in (("ppc64", True), ("x86_64", False)):
        rig_kernel_build_makes_a_minimal_l1_kernel(arch, tree, work, rig_cache_dir, rebuilds)
    matrix_runs_the_users_kernel_in_every_chosen_cell(tree, work, rig_cache_dir, short_tmp)
    coverage_counts_the_intx_lines_a_scenario_reached(tree, work, rig_cache_dir, short_tmp)
    git_bisect_run_names_the_commit_that_removed_the_fix(tree, work, rig_cache_dir, short_tmp)


def rig_kernel_build_makes_a_minimal_l1_kernel(arch, tree, work, rig_cache_dir, rebuilds):
    r = run_rig("kernel", "build", "--arch", arch, "--tree", str(tree), "--build-dir", str(build_dir(work, arch)),
                cache=rig_cache_dir, timeout=BUILD_S)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    lines = dict(line.split(None, 1) for line in r.stdout.splitlines() if line.strip())
    assert Path(lines["kernel"].strip()).is_file()
    assert lines["modules"].startswith("none")             # minimal: everything built in
    assert lines["release"].startswith("6.12.")
    assert "has the INTx fix" in lines["vfio"]             # read from vmlinux
    assert "configured" in lines["built"]
    if not rebuilds:
        return
    # Again, nothing changed: the configuration is kept and nothing is compiled again.
    again = run_rig("kernel", "build", "--arch", arch, "--tree", str(tree), "--build-dir",
                    str(build_dir(work, arch)), cache=rig_cache_dir, timeout=BUILD_S)
    assert again.returncode == 0, again.stderr[-3000:]
    built = next(line for line in again.stdout.splitlines() if line.startswith("built in"))
    assert "configured" not in built and compiled(built) < 20, built
    # One file changed: it and the links after it, nothing else.
    (tree / INTRS).touch()
    again = run_rig("kernel", "build", "--arch", arch, "--tree", str(tree), "--build-dir",
                    str(build_dir(work, arch)), cache=rig_cache_dir, timeout=BUILD_S)
    built = next(line for line in again.stdout.splitlines() if line.startswith("built in"))
    assert 1 <= compiled(built) < 40, built


def compiled(summary_line: str) -> int:
    m = re.search(r"\((\d+) files", summary_line)
    assert m, summary_line
    return int(m.group(1))


def matrix_runs_the_users_kernel_in_every_chosen_cell(tree, work, rig_cache_dir, short_tmp):
    """One nested cell per machine and the fast XICS cell, each expected to PASS, with the fix
    state read from each run's L1 binary beside its verdict. (The user's kernel in fast mode on
    XIVE: the bisect's runs; on q35: the coverage run.)"""
    out = short_tmp / "matrix"
    cells = ("ppc64-pseries-xics-own-pci-serial-userspace,ppc64-pseries-xive-own-pci-serial-l2-kvm,"
             "x86_64-q35-ioapic-own-pci-serial-l2-kvm,"
             "ppc64-powernv-xive-own-virtio-serial-l2-kvm")     # a KVM L2 in PowerNV: the kernel's KVM_XIVE
    r = run_rig("matrix", "--kernel-tree", str(tree), "--build-dir", str(work / "build"), "--cells", cells,
                "--duration", "40", "--out", str(out), "--no-snapshot", cache=rig_cache_dir, timeout=3600,
                env={"RIG_RUN_DIR": str(short_tmp)})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    results = json.loads((out / "matrix.json").read_text())
    assert {x["cell"]["arch"] for x in results} == set(PROFILES)
    assert len(results) == 4
    assert "ppc64-powernv-xive-own-virtio-serial-l2-kvm" in {x["id"] for x in results}
    for x in results:
        assert x["verdicts"] == ["PASS"] and x["vfio_intx_fix"] == [True], x
    for run in out.glob("*/run1"):
        data = load_result(run)
        assert "own-kernel-with-fix" in data["name"]
        assert data["l1"]["vfio_intx_fix"] is True
        assert data["chain"]["l1_started"] == "booted"      # --no-snapshot: a one-off kernel


def coverage_counts_the_intx_lines_a_scenario_reached(tree, work, rig_cache_dir, short_tmp):
    """--coverage: the tree built again with gcov on vfio_pci_intrs.c alone (its own build
    directory), a masked-pending run on q35, and the lines of the INTx functions it reached,
    read from L1's counters with the build's notes."""
    out = short_tmp / "coverage"
    r = run_rig("run", "--arch", "x86_64", "--device", "pci-serial", "--kernel-tree", str(tree), "--build-dir",
                str(work / "build-gcov"), "--coverage", "--consumer", "userspace", "--scenario", "masked-pending",
                "--no-snapshot", "--out", str(out), cache=rig_cache_dir, timeout=BUILD_S,
                env={"RIG_RUN_DIR": str(short_tmp)})
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert list((work / "build-gcov").rglob("*.gcno")) == [work / "build-gcov/drivers/vfio/pci/vfio_pci_intrs.gcno"]
    cov = json.loads((out / "coverage.json").read_text())
    fns = {f["name"]: f for f in cov["functions"]}
    assert fns["vfio_intx_handler"]["reached"] and fns["__vfio_pci_intx_mask"]["reached"]
    assert fns["vfio_pci_intx_unmask_handler"]["reached"] and not fns["vfio_intx_disable"]["reached"]
    assert 0 < cov["reached"] < cov["lines"] and "coverage: " in r.stdout


def git_bisect_run_names_the_commit_that_removed_the_fix(tree, work, rig_cache_dir, short_tmp):
    """A few commits on the tree; one removes the fix's IRQ_DISABLE_UNLAZY lines. Each bisect
    step rebuilds incrementally in the same build directory and runs ppc64 XIVE fast mode."""
    git(tree, "init", "-q")
    # Only the files the history changes are tracked (tracking the whole tree: 45 s): a
    # bisect step checks out just those, and the rest of the tree stays as it is, as it
    # would in a full clone. Debian's tree ignores everything at its top (its .gitignore): -f.
    git(tree, "add", "-f", "README", "MAINTAINERS", INTRS)
    git(tree, "commit", "-q", "-m", "linux-source-6.12 as Debian ships it")
    shas = [git(tree, "rev-parse", "HEAD")]

    def commit(path: str, change, message: str) -> None:
        f = tree / path
        f.write_text(change(f.read_text()))
        git(tree, "commit", "-q", "-am", message)
        shas.append(git(tree, "rev-parse", "HEAD"))

    commit("README", lambda t: t + "\nA harmless change.\n", "README: a harmless change")
    commit(INTRS, lambda t: FIX_LINES.sub("", t), "vfio/pci: drop IRQ_DISABLE_UNLAZY (brings the stall back)")
    commit("MAINTAINERS", lambda t: t + "\n", "MAINTAINERS: a harmless change")
    assert "IRQ_DISABLE_UNLAZY" in git(tree, "show", f"{shas[1]}:{INTRS}")
    assert "IRQ_DISABLE_UNLAZY" not in git(tree, "show", f"{shas[2]}:{INTRS}")
    check = short_tmp / "check.sh"      # what `git bisect run` runs at each step, in the tree
    check.write_text(
        "#!/bin/sh\n"
        f"exec {sys.executable} -m rig --bisect --cache-dir {rig_cache_dir} run --arch ppc64 --ic xive "
        f"--consumer userspace --duration 30 --no-snapshot --kernel-tree . --build-dir {build_dir(work, 'ppc64')} "
        f"--out {short_tmp}/out-$(git rev-parse --short=12 HEAD)\n")
    check.chmod(0o755)
    git(tree, "bisect", "start", shas[-1], shas[0])
    r = subprocess.run(["git", "-C", str(tree), "bisect", "run", str(check)], capture_output=True, text=True,
                       timeout=3600, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                          "RIG_RUN_DIR": str(short_tmp)})
    assert f"{shas[2]} is the first bad commit" in r.stdout, r.stdout[-4000:] + r.stderr[-3000:]
    steps = {p.name.removeprefix("out-"): load_result(p) for p in short_tmp.glob("out-*")}
    assert 1 <= len(steps) <= 2, steps.keys()      # bisection, not a linear scan
    for short, data in steps.items():
        bad = shas.index(next(s for s in shas if s.startswith(short))) >= 2
        # the verdict, and the fix state the rig read in the vmlinux it built at that commit
        assert data["verdict"]["verdict"] == ("STALL" if bad else "PASS"), data["verdict"]
        assert data["l1"]["vfio_intx_fix"] is (not bad)
        assert data["name"].endswith(("own-kernel-without-fix" if bad else "own-kernel-with-fix") + "-userspace")
    git(tree, "bisect", "reset")
