"""reproduce.sh from a STALL reproduces the STALL, for real (ppc64 XIVE, L1 without the fix,
fast mode), from a copy of the result directory elsewhere, as on another machine: about a
minute. The directories' names have a comma (spliced into QEMU's options unless escaped),
spaces, quotes and a command substitution (a shell must not run it)."""

import json
import os
import shutil
import subprocess

import pytest
from conftest import ROOT, load_result, nothing_left, run_rig

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("rig_chain")]


def test_reproduce_sh_from_a_stall_reproduces_the_stall(rig_cache_dir, run_base, short_tmp):
    out = short_tmp / "a stall, 'quoted' $(touch pwned)"
    env = {"RIG_RUN_DIR": str(run_base.parent)}
    r = run_rig("run", "--arch", "ppc64", "--ic", "xive", "--l1-vfio", "unfixed", "--consumer", "userspace",
                "--duration", "20", "--out", str(out), cache=rig_cache_dir, env=env)
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    assert f"rerun it: {out}/reproduce.sh" in r.stdout
    copied = short_tmp / "copied, \"too\" `touch pwned`"   # the directory as someone else received it
    shutil.copytree(out, copied)
    rerun = subprocess.run([str(copied / "reproduce.sh"), "--out", str(short_tmp / "again")],
                           capture_output=True, text=True, timeout=900,
                           env={**os.environ, **env, "RIG_OPTS": f"--cache-dir {rig_cache_dir}"})
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert "reproduced: 1 of 1 rerun(s) gave STALL, as recorded" in rerun.stdout
    again = load_result(short_tmp / "again" / "run-1")
    assert again["verdict"]["verdict"] == "STALL" and again["name"] == load_result(out)["name"]
    record = json.loads((short_tmp / "again" / "rerun.json").read_text())
    assert record["matched"] and record["provided_differences"] == []     # same QEMU, image, kernel
    assert nothing_left(run_base)
    assert not list(short_tmp.rglob("pwned")) and not (ROOT / "pwned").exists()
