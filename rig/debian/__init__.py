"""Debian packages: a private apt per architecture (never the host's), resolution to
pinned, checksummed versions, and unpacking without running anything."""
