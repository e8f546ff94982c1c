"""The host (L0): its QEMU, its accelerator, its packages, how many chains it holds,
the rig's SSH keys, run directories, and child processes that die with the rig."""
