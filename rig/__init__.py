"""intx-rig: find INTx interrupt stalls in VFIO passthrough of legacy PCI devices, under QEMU."""

__version__ = "0.1.0"
