"""A tour of evtrio.Buffer: lines, searching, zero-copy moves and reserve/commit.

Run it: python examples/buffer_tour.py
"""

from __future__ import annotations

from evtrio import EOL, Buffer


def main() -> None:
    request = Buffer()
    # Bytes arrive in arbitrary pieces; a CRLF may be split between two of them.
    for piece in (b"GET /index.html HTTP/1.1\r", b"\nHost: example.test\r\n", b"\r\nbody"):
        request.add(piece)

    print("request line:", request.readln(EOL.CRLF_STRICT, max_length=8192))
    while header := request.readln(EOL.CRLF_STRICT, max_length=8192):
        print("header:", header)
    print("left after the blank line:", bytes(request))

    # Moving bytes between buffers copies nothing: whole chunks change hands.
    body, archive = Buffer(b"x" * 100_000), Buffer()
    archive.add_buffer(body)
    print("moved", len(archive), "bytes; source now holds", len(body))

    # search() finds patterns that span chunks; peek() shows the chunks without copying.
    archive.add(b"--end--")
    print("marker at", archive.search(b"x--end"))
    print("chunk sizes:", [len(view) for view in archive.peek()])

    # reserve/commit: write straight into the buffer, e.g. with socket.recv_into.
    space = archive.reserve(16)
    space[:5] = b"12345"
    archive.commit(5)
    print("tail:", archive.copyout(12, start=len(archive) - 12))


if __name__ == "__main__":
    main()
