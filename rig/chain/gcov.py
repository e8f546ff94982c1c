"""L1's gcov counters of vfio-pci's interrupt code, for a kernel built with --coverage
(rig.kernel.kconfig.COVERED): zeroed before the consumer starts, so that a run counts what
its own scenario reached (the bind before it runs none of the INTx code; vfio_intx_enable()
runs with the consumer), and read back before L1 goes down. What the lines mean is worked
out on the host, from the build's notes files (rig.reports.coverage)."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from rig.core import timeouts
from rig.core.errors import InfraError
from rig.guests.ssh import GuestSSH
from rig.kernel.kconfig import COVERED as COVERED  # re-exported: what reports read it from
from rig.kernel.under_test import KernelUnderTest

GCOV_DIR = "/sys/kernel/debug/gcov"
OUT_DIR = "gcov"            # in the run's results: one .gcda per covered file
MOUNT = "mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug"


def build_dir_of(kernel: KernelUnderTest | None) -> Path | None:
    """The build directory of a kernel built with --coverage (gcov in it, and the notes of
    every covered file beside its objects), found from the .config the rig read; else None."""
    if kernel is None or kernel.option("CONFIG_GCOV_KERNEL") != "y":
        return None
    build_dir = Path(kernel.config_source).parent
    return build_dir if all((build_dir / c).with_suffix(".gcno").is_file() for c in COVERED) else None


def counters_name(source: str) -> str:
    return f"{Path(source).stem}.gcda"


def reset(ssh: GuestSSH) -> None:
    """Every counter of the kernel to zero (gcov's debugfs `reset` file)."""
    r = ssh.run(f"{MOUNT} && echo 1 > {GCOV_DIR}/reset", timeout=timeouts.SSH_QUICK_S)
    if r.status != 0:
        raise InfraError(f"L1's gcov counters could not be reset ({GCOV_DIR}/reset): {r.stderr.strip()[-200:]}")


def fetch(ssh: GuestSSH, out: Path) -> list[Path]:
    """Each covered file's counters from L1, into out/gcov/; the files written."""
    dest = out / OUT_DIR
    dest.mkdir(exist_ok=True)
    written = []
    for source in COVERED:
        name = counters_name(source)
        r = ssh.run(f"{MOUNT}; f=$(find {GCOV_DIR} -name {name} | head -n 1); test -n \"$f\" && base64 \"$f\"",
                    timeout=timeouts.SSH_COMMAND_S)
        if r.status != 0:
            raise InfraError(f"no {name} under L1's {GCOV_DIR}: was the kernel built with --coverage?")
        try:
            data = base64.b64decode(r.stdout, validate=False)
        except binascii.Error as e:
            raise InfraError(f"L1's {name} came back garbled: {e}") from e
        (dest / name).write_bytes(data)
        written.append(dest / name)
    return written
