"""vfio-user: the protocol (protocol.py) and a server for one device (server.py)."""
