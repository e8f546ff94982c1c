"""Emulated PCI devices the rig attaches to L1 (the vfio-user legacy device comes here)."""
