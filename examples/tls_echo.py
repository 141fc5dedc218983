"""TLS with evtrio: a line-echo server (serve_tls) and its clients (open_tls_stream) in
one program, with certificates from a throwaway trustme CA. Loopback only.

It shows a verified connection with SNI, line reads over TLS, a dirty shutdown seen
strictly and tolerantly, and the typed errors of certificates that do not verify.

Run it: python examples/tls_echo.py
"""

from __future__ import annotations

import ssl
from functools import partial

import trio
import trustme

import evtrio
from evtrio.streams import TLSStream, open_tls_stream, serve_tls
from evtrio.streams.buffered import BufferedStream


async def echo(stream: TLSStream[trio.SocketStream]) -> None:
    """Echo lines; on "cut", drop the connection without a close_notify."""
    buffered = BufferedStream(stream)
    while (line := await buffered.readln(evtrio.EOL.LF)) is not None:
        if line == b"cut":
            await trio.aclose_forcefully(stream)  # no close_notify: a dirty shutdown
            return
        await buffered.send_all(b"echo: " + line + b"\n")
    # Returning ends the session properly: serve_tls sends our close_notify.


async def main() -> None:
    # A CA of our own, a certificate for "localhost", and contexts for both ends.
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    client_context.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF  # report dirty shutdowns
    ca.configure_trust(client_context)
    names: list[str | None] = []
    server_context.sni_callback = lambda _ssl, name, _ctx: names.append(name)
    failed_handshakes: list[Exception] = []

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            server = await nursery.start(
                partial(
                    serve_tls,
                    echo,
                    0,
                    server_context,
                    host="127.0.0.1",
                    on_error=failed_handshakes.append,
                )
            )
            # The loopback address, and the name the certificate is for (sent in SNI).
            connect = partial(
                open_tls_stream, "127.0.0.1", server.port, server_hostname="localhost"
            )

            # 1. A verified connection; BufferedStream reads lines over it.
            stream = BufferedStream(await connect(ssl_context=client_context))
            tls = stream.transport_stream
            assert isinstance(tls, TLSStream)
            print(f"connected: {tls.statistics().version}, SNI {names[-1]!r}, certificate ok")
            await stream.send_all(b"hello over TLS\n")
            print((await stream.readln(evtrio.EOL.LF) or b"").decode())
            await stream.aclose()  # our close_notify: the server's readln sees the end

            # 2. A server that drops the connection without a close_notify.
            strict = await connect(ssl_context=client_context)
            await strict.send_all(b"cut\n")
            try:
                await strict.receive_some()
            except evtrio.DirtyShutdownError:
                print(f"strict client: DirtyShutdownError, dirty_shutdown={strict.dirty_shutdown}")
            await strict.aclose()

            tolerant = await connect(ssl_context=client_context, tolerate_dirty_shutdown=True)
            await tolerant.send_all(b"cut\n")
            data = await tolerant.receive_some()
            print(f"tolerant client: {data!r}, dirty_shutdown={tolerant.dirty_shutdown}")
            await tolerant.aclose()

            # 3. Certificates that do not verify: typed errors with OpenSSL's verdict.
            for label, options in [
                ("untrusted CA", {}),  # the default context trusts the system's CAs only
                ("wrong name", {"ssl_context": client_context, "server_hostname": "example.org"}),
            ]:
                try:
                    await connect(**options)
                except evtrio.CertificateVerifyError as exc:
                    print(f"{label}: code {exc.verify_code}: {exc.verify_message}")

            await server.shutdown()

    stats = server.statistics()
    print(f"server: {stats.accepted} connections, {len(failed_handshakes)} failed handshakes")


if __name__ == "__main__":
    trio.run(main)
