"""The chain and its verdict: from a RunSpec to a running L0 -> L1 -> L2 chain (setup),
the device under test, the bind in L1, the consumer and its reader, the drive, the
interrupt-path tracer, and the verdict itself."""
