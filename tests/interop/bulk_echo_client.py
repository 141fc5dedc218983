"""A plain stdlib echo client (no evtrio, no Trio): sends SIZE bytes of seeded random
data in random-size writes while a thread reads the echo, and checks it byte for byte.

Usage: python bulk_echo_client.py HOST PORT SIZE SEED
Exit status 0 and "echo ok N" when every byte came back in order.
"""

from __future__ import annotations

import hashlib
import random
import socket
import sys
import threading


def main() -> int:
    host, port, size, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    rng = random.Random(seed)
    sent, received = hashlib.sha256(), hashlib.sha256()
    counts = {"received": 0}

    with socket.create_connection((host, port), timeout=120) as sock:

        def read() -> None:
            while chunk := sock.recv(1 << 16):
                received.update(chunk)
                counts["received"] += len(chunk)

        reader = threading.Thread(target=read)
        reader.start()
        remaining = size
        while remaining:
            piece = rng.randbytes(min(remaining, rng.randint(1, 256 * 1024)))
            sock.sendall(piece)
            sent.update(piece)
            remaining -= len(piece)
        sock.shutdown(socket.SHUT_WR)
        reader.join()

    if counts["received"] != size or sent.digest() != received.digest():
        print(f"echo MISMATCH: sent {size}, received {counts['received']}")
        return 1
    print(f"echo ok {size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
