"""Every timeout and pacing constant of the rig, in one place, each with its reason.

Seconds throughout. Measured on a 2-core machine under TCG (docs/measurements.md); the
limits leave room for a slow, shared machine, because a timeout that fires on a healthy
run is an ERROR nobody can act on. Every wait in the rig is bounded by one of these.
"""

from __future__ import annotations

# -- guests booting ------------------------------------------------------------------
# L1, and an L2 under KVM inside L1: up in 10-60 s.
BOOT_S = 400.0
# An L2 under TCG inside TCG: 95-330 s measured, slower on a busy day.
L2_TCG_BOOT_S = 1200.0
# A KVM L2 that has not printed its ready line by then is hung (up in 15-60 s when it
# boots; twice in 40 x86 runs its vCPU spun on jiffies_lock): diagnosed, restarted once.
L2_KVM_HANG_S = 120.0
# `rig boot`'s default.
BOOT_COMMAND_BOOT_S = 300.0
# From L2's ready line to an SSH session: the key exchange runs in L2, slow under TCG-in-TCG.
L2_SSH_S = {"kvm": 120.0, "tcg": 300.0}
# From L1's ready line to an SSH session (dropbear is already listening).
L1_SSH_S = 60.0

# -- SSH -------------------------------------------------------------------------------
# One connection attempt: paramiko's timeout also bounds the key exchange, which took more
# than 10 s with a TCG-in-TCG L2's dropbear; it then fails with "No existing session".
SSH_ATTEMPT_MIN_S = 10.0
SSH_ATTEMPT_MAX_S = 60.0
# Pace of connection retries while sshd comes up (a refused connection fails at once).
SSH_RETRY_GAP_S = 0.5
# A command over SSH, by default; short reads of /proc take well under a second.
SSH_COMMAND_S = 60.0
SSH_QUICK_S = 30.0          # cat /proc/interrupts, true, dmesg: one round trip
SSH_TRACE_READ_S = 120.0    # reading L1's whole ftrace buffer (up to a few MB over SSH)
USER_COMMAND_S = 120.0      # `rig boot --command`

# -- QEMU and QMP ----------------------------------------------------------------------
# QEMU connecting to the rig's QMP and console sockets after exec (under a second).
QEMU_CONNECT_S = 30.0
# One QMP command: a wedged QEMU must not hang the sampling loop for ever.
QMP_COMMAND_S = 30.0
# Powering L1 off: system_powerdown, then quit, then SIGKILL, each waited for this long.
L1_POWERDOWN_S = 30.0
L1_POWERDOWN_AFTER_RUN_S = 20.0    # bounds the end of a run (which quits L1 at once: rig.chain.setup)
QEMU_EXIT_S = 10.0
# `qemu-system-* -version`, `-device help`, `gcc --version`, `dpkg-deb --field`: quick queries.
QEMU_QUERY_S = 30.0
# gcov reading one file's counters (vfio_pci_intrs.c: well under a second, 2026-12-07).
GCOV_REPORT_S = 30.0
# L2's QEMU asked to quit, before it is SIGKILLed through L1.
L2_STOP_S = 15.0
# The KVM probe's 16-byte test guest (runs in milliseconds when KVM works).
KVM_PROBE_S = 20.0
# QEMU with a vfio-user device started and reset once (under a second), per binary.
VFIO_USER_PROBE_S = 60.0
# The same probe in `rig finding-vfio-user`: a QEMU that starts answers in under a second;
# one that hangs (powernv9's PHB4, docs/findings/) is reported after this long.
VFIO_USER_FINDING_S = 15.0

# -- the device and its consumer -------------------------------------------------------
DEVICE_CONNECT_S = 30.0     # L0 QEMU connecting pci-serial's chardev
DEVICE_MODEL_READY_S = 15.0 # the legacy device model printing READY
# The legacy device added to a running q35 L1 (device_add on an empty pcie-root-port): L1's
# kernel had it on its bus (8250_pci bound, ttyS1) about 1 s after the command (2026-12-06,
# TCG, 2 cores, Debian 6.12.95).
DEVICE_HOTPLUG_S = 20.0
DEVICE_MODEL_EXIT_S = 5.0
DEVICE_CONTROL_S = 10.0     # one request on the legacy device's control socket
BIND_S = 60.0               # the bind script in L1 (0.15-1 s measured)
READER_START_S = 30.0       # the consumer printing its READER line
READER_STATUS_S = 2.0       # an ended consumer's exit status after its EOF (sent together: ms)
TRACE_SETUP_S = 60.0        # arming L1's kprobes and ftrace

# -- driving ----------------------------------------------------------------------------
# Between a serviced byte and the next push: the device never asserts while the previous
# interrupt is in flight (QEMU's XIVE loses an assertion that arrives while masked).
PUSH_GAP_S = 0.02
SAMPLE_EVERY_S = 1.0        # /proc/interrupts at every layer
# A push not read this long after it is sampled at once: the stall window then counts from
# about the push, not from the next tick, up to a second later. A push is read within 89 ms
# in 99.9 % of the soak's fast-mode interrupts (docs/measurements.md): a flowing device
# almost never pays for the extra sample.
PENDING_LOOK_S = 0.25
# Pending and nothing moved for this long: STALL. By how L2 runs ("": no L2, the userspace
# consumer). Measured over the soak's 1,275 PASS runs (2-3 chains at a time on 2 cores,
# 210,497 interrupts, bench/push_latency.py): from a push to its byte read, 0.83 s at most in
# fast mode and 1.29 s with L2 under KVM; 2 s and 3 s are more than twice those (2 s is also
# the shortest window that sees two samples: spec.MIN_STALL_WINDOW_S). L2 under TCG (the
# --slow cells) has no such measurement: it keeps the 5 s it has always passed with.
STALL_WINDOW_S = {"": 2.0, "kvm": 3.0, "tcg": 5.0}
LONGEST_STALL_WINDOW_S = max(STALL_WINDOW_S.values())   # for an L2 accelerator not known yet
DURATION_S = 60.0
# A scenario other than the flow (guest_images/consumer/scenarios.c): its consumer waits at
# most 10 s for a push to reach the device and 5 s for each event, over at most seven
# steps, so it has said END or failed well within this; the rig waits for each line this long.
SCENARIO_LINE_S = 30.0
SCENARIO_S = 180.0

# -- threads and helpers ----------------------------------------------------------------
THREAD_JOIN_S = 2.0         # the console pump and the SSH relays, at teardown
CONSOLE_COMMAND_S = 10.0    # a command at L1's console shell (when SSH is not up)
CONSOLE_POLL_S = 0.2        # the console pump's wait for data: how soon it sees a stop
RELAY_POLL_S = 0.5          # an SSH relay's wait for data: how soon it sees a close
# A console wait checks this often that the guest is still alive (QEMU running, not
# panicked): a dead guest fails within seconds, not at the timeout.
CONSOLE_HEALTH_EVERY_S = 3.0

# -- rig matrix -------------------------------------------------------------------------
# One `rig run` of a cell: the slowest (TCG-in-TCG ppc64) took 330 s.
MATRIX_RUN_S = 3600.0
# An interrupted run cleans up in under a second (its L2's stop L2_STOP_S, QEMU's exit
# QEMU_EXIT_S at worst); one still there after this long is killed.
MATRIX_RUN_STOP_S = 60.0

# -- a held chain (rig run --hold; rig ssh, monitor, stop) ---------------------------------
HOLD_MINUTES = 30.0         # the default time limit of a hold
HOLD_POLL_S = 0.5           # the control socket's accept timeout: how soon it sees the hold end
HOLD_REQUEST_S = 60.0       # one monitor request (a QMP command through L1's SSH: QMP_COMMAND_S)
# rig stop waits this long for the held rig to tear the chain down (L1's powerdown
# L1_POWERDOWN_AFTER_RUN_S, L2's stop L2_STOP_S, then QEMU's exit QEMU_EXIT_S, and margin).
HOLD_STOP_S = 90.0
# rig run --hold --detach: the foreground waits for the held rig's record this long at most
# (a whole run, kernel build included: the matrix's bound for one run).
HOLD_DETACH_S = 3600.0

# -- Debian's archive -------------------------------------------------------------------
# Back-off between retries of an index or package download (a mirror mid-sync).
APT_RETRY_DELAYS_S = (5.0, 10.0, 20.0)
# One apt-get run (an index update, or downloading a package set of ~600 MB).
APT_COMMAND_S = 1800.0
# Building a cache entry (an image, the unfixed vfio modules, the consumer).
BUILD_S = 1800.0
# Building a kernel from the user's tree: a ppc64le_defconfig cross build on one slow core
# takes over an hour; the minimal configuration about 6 minutes on two.
KERNEL_BUILD_S = 4 * 3600.0
# At most one progress line this often while make runs.
KERNEL_BUILD_PROGRESS_EVERY_S = 20.0
# `ccache --print-stats` reads one small file per cache subdirectory: well under a second.
CCACHE_STATS_S = 30.0

# -- snapshots of a booted L1 (rig.guests.snapshot) -------------------------------------
# Saving a 2 GB L1 (about 300 MB written) took 1.8-2.5 s; restoring it 0.4-0.6 s to L1's
# shell (design spikes, 2026-12-02). Far past either, QEMU is stuck: boot cold instead.
SNAPSHOT_SAVE_S = 120.0
SNAPSHOT_RESTORE_S = 120.0
# A restored L1's SSH answered 0.4-0.9 s after the restore; one that has not after this
# long never will (a powernv9 L1 stayed silent): drop the snapshot and boot.
L1_RESTORED_SSH_S = 15.0
# How often a migration's status is asked between its events.
SNAPSHOT_POLL_S = 0.2
# A cancelled save stops at the next chunk it writes (QEMU checks between iterations):
# milliseconds when it is stuck on nothing; past this, the guest is left as it is.
SNAPSHOT_CANCEL_S = 10.0

# -- signals (rig.host.signals) --------------------------------------------------------
# An interrupt swallowed by a finalizer is sent again this long after the hook that saw it
# (which returns in microseconds): not at once, or it lands in the hook and is swallowed too.
INTERRUPT_AGAIN_S = 0.01
