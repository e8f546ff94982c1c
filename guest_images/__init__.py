"""How the L1 and L2 guest images are built: from Debian packages by name, into a kernel
plus an initramfs, cached by content hash."""
