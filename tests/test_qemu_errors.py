"""QemuMachine's failures are typed and carry what explains them: a QEMU that exits at once is
LaunchFailed saying so (with its exit status, not "did not connect to QMP"), with its command
line and its own last words. A real process stands in for QEMU: a script that complains and
exits."""

import pytest

from rig.core.errors import InfraError, LaunchFailed, QemuError
from rig.guests.machine import QemuMachine
from rig.host.qemu import QemuBinary
from rig.host.rundir import RunDir

pytestmark = pytest.mark.unit


def test_a_qemu_that_exits_at_once_is_launch_failed_with_its_status_and_words(tmp_path, run_base):
    fake = tmp_path / "qemu-system-x86_64"
    fake.write_text("#!/bin/sh\necho 'qemu-system-x86_64: -sandbox on: seccomp: no such thing' >&2\nexit 1\n")
    fake.chmod(0o755)
    qemu = QemuBinary(fake, "test")
    qemu.__dict__["has_sandbox"] = False            # no -help to ask
    with RunDir("errors") as rd, QemuMachine("l1", qemu, ["-M", "none"], rd, tmp_path / "logs") as m:
        with pytest.raises(LaunchFailed) as e:
            m.launch(connect_timeout=2)
    err = e.value
    assert isinstance(err, QemuError) and isinstance(err, InfraError)     # an ERROR verdict, never a STALL
    assert "QEMU exited at once with status 1" in str(err) and "no such thing" in str(err)
    assert err.argv[-2:] == ["-M", "none"] and str(fake) in err.argv
    assert "no such thing" in err.log_tail
