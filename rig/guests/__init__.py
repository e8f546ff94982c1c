"""Guests: one QEMU process (machine), its console and SSH, L1 as L0 runs it, L2 as L1
runs it, and the relay that carries L2's channels through L1."""
