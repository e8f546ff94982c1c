"""`git bisect run` with the rig: exit 0 PASS (good), 1 STALL (bad), 125 ERROR (skip).

A stand-in for a kernel tree that CI can afford: a repository whose commits choose L1's
vfio module (Debian's, with the fix, or the rebuilt one without it); the regression is the
commit that switches to the unfixed module, and git bisect must name it.
"""

import subprocess
import sys

import pytest
from conftest import ROOT, load_result

from rig.core.spec import PASS_AFTER

pytestmark = pytest.mark.e2e


def git(repo, *args) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def test_git_bisect_run_finds_the_commit_that_brings_the_stall(rig_cache_dir, short_tmp, run_base):
    repo = short_tmp / "tree"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.email", "rig@example.invalid")
    git(repo, "config", "user.name", "rig")
    shas = []
    for i, variant in enumerate(["fixed", "fixed", "unfixed", "unfixed", "unfixed"]):
        (repo / "variant").write_text(variant + "\n")
        (repo / "n").write_text(f"{i}\n")
        git(repo, "add", ".")
        git(repo, "commit", "-q", "-m", f"commit {i}: {variant}")
        shas.append(git(repo, "rev-parse", "HEAD"))
    check = short_tmp / "check.sh"
    check.write_text(
        "#!/bin/sh\n"
        f"exec {sys.executable} -m rig --bisect --cache-dir {rig_cache_dir} run --arch ppc64 "
        f"--ic xive --l1-vfio \"$(cat variant)\" --duration 12\n")
    check.chmod(0o755)
    git(repo, "bisect", "start", shas[-1], shas[0])
    tmp = short_tmp / "tmp"
    tmp.mkdir()
    r = subprocess.run(["git", "-C", str(repo), "bisect", "run", str(check)], capture_output=True,
                       text=True, timeout=1800, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin",
                                                      "RIG_RUN_DIR": str(run_base.parent), "TMPDIR": str(tmp)})
    assert f"{shas[2]} is the first bad commit" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]
    # Each step's results go to the temporary directory, never into the tree being bisected.
    assert not (repo / "results").exists() and git(repo, "status", "--porcelain") == ""
    ran = sorted((tmp / "intx-rig-bisect").iterdir())
    assert 1 <= len(ran) <= 3  # bisection, not a linear scan
    for out in ran:
        result = load_result(out)
        assert result["drive"]["pass_after"] == PASS_AFTER     # a good step ends once it is certain
