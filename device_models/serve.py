"""Run the legacy device model: `python -m device_models.serve --socket S --control C`.

Prints "READY" on stdout once both sockets listen (the rig waits for that line before it
starts QEMU), then serves until SIGTERM/SIGINT or until stdin closes (the rig is gone).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from .control import Control
from .legacy_uart import LegacyUart
from .vfio_user.server import Server


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", required=True, help="vfio-user socket QEMU connects to")
    ap.add_argument("--control", required=True, help="control socket for the rig")
    ap.add_argument("--pci-2-3", action="store_true", help="the PCI 2.3 twin (INTx maskable)")
    ap.add_argument("--gap", type=float, default=0.02, help="paced mode: seconds after a service")
    ap.add_argument("--free", action="store_true", help="free-running: no pacing (stress)")
    args = ap.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s")
    device = LegacyUart(pci_2_3=args.pci_2_3, gap=args.gap, paced=not args.free)
    server = Server(args.socket, device).start()
    control = Control(args.control, device).start()
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    def stdin_closed() -> None:
        sys.stdin.read()
        done.set()

    threading.Thread(target=stdin_closed, daemon=True).start()
    print("READY", flush=True)
    done.wait()
    server.close()
    control.close()
    device.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
