"""evtrio's TLS against real peers: ``openssl s_client`` and ``curl`` against
:func:`evtrio.streams.serve_tls`, and :func:`evtrio.streams.open_tls_stream` against
``openssl s_server``.

Certificates come from a trustme CA written to ``tmp_path``. Everything runs on
127.0.0.1 with ports chosen by binding to port 0; every peer process is killed and
reaped when its test ends. A missing peer program fails the test with the command that
installs it (``make test`` installs them first through ``scripts/install-peers.sh``).
"""

from __future__ import annotations

import logging
import socket
import ssl
import subprocess
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import pytest
import trio
import trustme
from helpers import require_program

from evtrio import EOL, CertificateVerifyError, DirtyShutdownError, TLSHandshakeError
from evtrio.streams import open_tls_stream, serve_tls
from evtrio.streams.buffered import BufferedStream

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

    from evtrio.streams import TLSStream

TIMEOUT = 30.0
"""Upper bound for any single test's waiting; never reached when things work."""

VERSIONS = {"tls13": "-tls1_3", "tls12": "-tls1_2"}
"""The peer's option that pins each protocol version."""


@dataclass(frozen=True)
class Pki:
    """A test CA with one certificate for localhost/127.0.0.1 and one for alt.test."""

    ca: trustme.CA
    ca_file: str
    server_file: str
    alt_file: str
    cert: trustme.LeafCert

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
        self.cert.configure_cert(context)
        return context

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        context.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
        self.ca.configure_trust(context)
        return context


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    alt = ca.issue_cert("alt.test")
    files = {"ca": tmp_path / "ca.pem", "server": tmp_path / "server.pem"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    cert.private_key_and_cert_chain_pem.write_to_path(str(files["server"]))
    alt_file = tmp_path / "alt.pem"
    alt.private_key_and_cert_chain_pem.write_to_path(str(alt_file))
    return Pki(ca, str(files["ca"]), str(files["server"]), str(alt_file), cert)


def free_port() -> int:
    """A port nobody listens on right now (the peer binds it a moment later)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def stop(process: trio.Process) -> None:
    with trio.CancelScope(shield=True):
        if process.returncode is None:
            process.kill()
        await process.wait()


@asynccontextmanager
async def openssl_s_server(*options: str) -> AsyncIterator[tuple[int, trio.Process]]:
    """Run ``openssl s_server`` on a free loopback port until the block ends.

    Yields the port and the process once it prints ``ACCEPT``. If another program took
    the port in between, it starts again on a new one.
    """
    openssl = require_program("openssl", "openssl")
    for _ in range(5):
        port = free_port()
        process = await trio.lowlevel.open_process(
            [openssl, "s_server", "-accept", f"127.0.0.1:{port}", *options],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            assert process.stdout is not None
            output = b""
            while b"ACCEPT\n" not in output:
                chunk = await process.stdout.receive_some()
                if not chunk:
                    break
                output += chunk
            if b"ACCEPT\n" in output:
                yield port, process
                return
        finally:
            await stop(process)
    raise AssertionError(f"openssl s_server did not start: {output.decode(errors='replace')}")


# ---------------------------------------------------------------- evtrio's client, s_server


@pytest.mark.parametrize("version", VERSIONS, ids=list(VERSIONS))
async def test_open_tls_stream_against_openssl_s_server(pki: Pki, version: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with openssl_s_server("-cert", pki.server_file, "-rev", VERSIONS[version]) as (
            port,
            _,
        ):
            tls = await open_tls_stream(
                "127.0.0.1", port, ssl_context=pki.client_context(), server_hostname="localhost"
            )
            assert tls.statistics().version == {"tls13": "TLSv1.3", "tls12": "TLSv1.2"}[version]
            stream = BufferedStream(tls)
            await stream.send_all(b"hello evtrio\n")
            assert await stream.readln(EOL.LF) == b"oirtve olleh"
            # "CLOSE" makes s_server end the session properly, with a close_notify.
            await stream.send_all(b"CLOSE\n")
            assert await stream.readln(EOL.LF) is None
            assert tls.statistics().close_notify_received
            assert not tls.dirty_shutdown
            await stream.aclose()


async def test_open_tls_stream_sends_SNI_to_openssl_s_server(pki: Pki) -> None:
    # s_server presents the alt.test certificate only to clients that ask for alt.test
    # in SNI, so verification succeeds only if the name was sent.
    with trio.fail_after(TIMEOUT):
        async with openssl_s_server(
            "-cert", pki.server_file, "-servername", "alt.test", "-cert2", pki.alt_file, "-rev"
        ) as (port, _):
            stream = await open_tls_stream(
                "127.0.0.1", port, ssl_context=pki.client_context(), server_hostname="alt.test"
            )
            names = stream.ssl_stream.getpeercert()["subjectAltName"]
            assert names == (("DNS", "alt.test"),)
            await stream.aclose()


async def test_open_tls_stream_refuses_openssl_s_server_with_the_wrong_name(pki: Pki) -> None:
    with trio.fail_after(TIMEOUT):
        async with openssl_s_server("-cert", pki.server_file, "-rev") as (port, _):
            with pytest.raises(CertificateVerifyError) as failed:
                await open_tls_stream(
                    "127.0.0.1",
                    port,
                    ssl_context=pki.client_context(),
                    server_hostname="www.example.org",
                )
    assert failed.value.verify_code == 62  # X509_V_ERR_HOSTNAME_MISMATCH
    assert "Hostname mismatch" in failed.value.verify_message
    assert failed.value.server_hostname == "www.example.org"


async def test_open_tls_stream_refuses_an_untrusted_openssl_s_server(pki: Pki) -> None:
    with trio.fail_after(TIMEOUT):
        async with openssl_s_server("-cert", pki.server_file, "-rev") as (port, _):
            # The default context trusts the system's CAs only.
            with pytest.raises(CertificateVerifyError) as failed:
                await open_tls_stream("127.0.0.1", port, server_hostname="localhost")
    assert failed.value.verify_code == 20  # X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    assert failed.value.verify_message == "unable to get local issuer certificate"


@pytest.mark.parametrize("tolerate", [False, True], ids=["strict", "tolerant"])
async def test_open_tls_stream_sees_openssl_s_server_die(pki: Pki, tolerate: bool) -> None:
    with trio.fail_after(TIMEOUT):
        async with openssl_s_server("-cert", pki.server_file, "-rev") as (port, process):
            tls = await open_tls_stream(
                "127.0.0.1",
                port,
                ssl_context=pki.client_context(),
                server_hostname="localhost",
                tolerate_dirty_shutdown=tolerate,
            )
            stream = BufferedStream(tls)
            await stream.send_all(b"ping\n")
            assert await stream.readln(EOL.LF) == b"gnip"
            # Killed, the server cannot send a close_notify: the kernel just closes the
            # connection, which is what a truncation attack looks like too.
            process.kill()
            if tolerate:
                assert await stream.receive_some() == b""
            else:
                with pytest.raises(DirtyShutdownError):
                    await stream.receive_some()
            assert tls.dirty_shutdown
            assert not tls.statistics().close_notify_received
            await stream.aclose()


# ---------------------------------------------------------------- s_client, evtrio's server


async def line_responder(stream: TLSStream[trio.SocketStream]) -> None:
    buffered = BufferedStream(stream)
    line = await buffered.readln(EOL.LF)
    await buffered.send_all(b"evtrio heard: " + (line or b"nothing") + b"\n")


def s_client_command(pki: Pki, port: int, *options: str, trust: bool = True) -> list[str]:
    """``openssl s_client`` to 127.0.0.1:*port*, asking for "localhost" and requiring a
    verified certificate (trusting the test CA unless *trust* is off)."""
    openssl = require_program("openssl", "openssl")
    command = [openssl, "s_client", "-connect", f"127.0.0.1:{port}"]
    command += ["-servername", "localhost", "-verify_return_error"]
    if trust:
        command += ["-CAfile", pki.ca_file]
    return [*command, *options]


@pytest.mark.parametrize("version", VERSIONS, ids=list(VERSIONS))
async def test_openssl_s_client_against_serve_tls(
    pki: Pki, nursery: trio.Nursery, version: str
) -> None:
    names: list[str | None] = []
    context = pki.server_context()
    context.sni_callback = lambda _obj, name, _ctx: names.append(name)
    server = await nursery.start(partial(serve_tls, line_responder, 0, context, host="127.0.0.1"))
    with trio.fail_after(TIMEOUT):
        # -quiet also keeps s_client reading after its input ends: it exits when the
        # server's handler returns and evtrio ends the session.
        result = await trio.run_process(
            s_client_command(pki, server.port, "-quiet", VERSIONS[version]),
            stdin=b"hello from s_client\n",
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert result.stdout == b"evtrio heard: hello from s_client\n"
    assert names == ["localhost"]


async def test_serve_tls_sees_openssl_s_client_close_and_die(
    pki: Pki, nursery: trio.Nursery
) -> None:
    endings: list[tuple[bytes, bool, bool]] = []
    error_types: list[type[BaseException]] = []
    got_cut = trio.Event()

    async def handler(stream: TLSStream[trio.SocketStream]) -> None:
        buffered = BufferedStream(stream)
        line = await buffered.readln(EOL.LF) or b""
        if line == b"cut":
            got_cut.set()
        try:
            rest = await buffered.receive_some()
        except trio.BrokenResourceError as exc:
            error_types.append(type(exc))
            rest = b"(broken)"
        endings.append(
            (line + rest, stream.dirty_shutdown, stream.statistics().close_notify_received)
        )

    server = await nursery.start(
        partial(serve_tls, handler, 0, pki.server_context(), host="127.0.0.1")
    )
    command = s_client_command(pki, server.port)
    with trio.fail_after(TIMEOUT):
        # Without -quiet/-ign_eof, s_client ends the session properly at end of input.
        result = await trio.run_process(
            command, stdin=b"bye\n", capture_stdout=True, capture_stderr=True, check=False
        )
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        while not endings:  # noqa: ASYNC110 - the handler reports from its own task
            await trio.sleep(0.01)
        assert endings.pop() == (b"bye", False, True)

        # Killed mid-session, s_client sends no close_notify.
        process = await trio.lowlevel.open_process(
            command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            assert process.stdin is not None
            await process.stdin.send_all(b"cut\n")
            await got_cut.wait()
            process.kill()
            while not endings:  # noqa: ASYNC110
                await trio.sleep(0.01)
        finally:
            await stop(process)
    assert endings == [(b"cut(broken)", True, False)]
    assert error_types == [DirtyShutdownError]


async def test_serve_tls_reports_openssl_s_client_refusing_its_certificate(
    pki: Pki, nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="evtrio.streams.tls")
    failures: list[Exception] = []
    server = await nursery.start(
        partial(
            serve_tls,
            line_responder,
            0,
            pki.server_context(),
            host="127.0.0.1",
            on_error=failures.append,
        )
    )
    with trio.fail_after(TIMEOUT):
        # No -CAfile: s_client does not trust the test CA and aborts with an alert.
        result = await trio.run_process(
            s_client_command(pki, server.port, trust=False),
            stdin=b"",
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert result.returncode != 0
        while not failures:  # noqa: ASYNC110 - the server reports from its own task
            await trio.sleep(0.01)
    [failure] = failures
    assert isinstance(failure, TLSHandshakeError)
    assert failure.reason == "TLSV1_ALERT_UNKNOWN_CA"
    assert any("TLS handshake with 127.0.0.1:" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- curl, evtrio's server


async def http_responder(stream: TLSStream[trio.SocketStream], requests: list[bytes]) -> None:
    """A tiny HTTP/1.0-style responder: read the request head, answer, end the session."""
    buffered = BufferedStream(stream)
    head = []
    while line := await buffered.readln(EOL.CRLF, max_length=8192):
        head.append(line)
    requests.append(b"\n".join(head))
    # No Content-Length: the body ends where the TLS session ends.
    await buffered.send_all(
        b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nhello from evtrio\n"
    )


def curl_command(pki: Pki, port: int, path: str, *, trust: bool = True) -> list[str]:
    curl = require_program("curl", "curl")
    command = [curl, "--silent", "--show-error", "--max-time", "20"]
    command += ["--resolve", f"localhost:{port}:127.0.0.1"]
    if trust:
        command += ["--cacert", pki.ca_file]
    return [*command, f"https://localhost:{port}{path}"]


@pytest.mark.parametrize("https_compatible", [False, True], ids=["close-notify", "https"])
async def test_curl_against_serve_tls(
    pki: Pki, nursery: trio.Nursery, https_compatible: bool
) -> None:
    # The body ends where the TLS session ends: with a close_notify, or (as many HTTPS
    # servers do, and https_compatible does) without one; curl accepts both.
    requests: list[bytes] = []
    errors: list[Exception] = []
    server = await nursery.start(
        partial(
            serve_tls,
            partial(http_responder, requests=requests),
            0,
            pki.server_context(),
            host="127.0.0.1",
            on_error=errors.append,
            https_compatible=https_compatible,
        )
    )
    with trio.fail_after(TIMEOUT):
        result = await trio.run_process(
            curl_command(pki, server.port, "/hello"),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert result.stdout == b"hello from evtrio\n"
    [request] = requests
    assert request.startswith(b"GET /hello HTTP/1.1\n")
    assert f"Host: localhost:{server.port}".encode() in request.split(b"\n")
    assert errors == []


async def test_curl_refusing_an_untrusted_serve_tls(pki: Pki, nursery: trio.Nursery) -> None:
    failures: list[Exception] = []
    server = await nursery.start(
        partial(
            serve_tls,
            partial(http_responder, requests=[]),
            0,
            pki.server_context(),
            host="127.0.0.1",
            on_error=failures.append,
        )
    )
    with trio.fail_after(TIMEOUT):
        result = await trio.run_process(
            curl_command(pki, server.port, "/hello", trust=False),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
        assert result.returncode == 60, result.stderr.decode(
            errors="replace"
        )  # CURLE_PEER_FAILED_VERIFICATION
        while not failures:  # noqa: ASYNC110 - the server reports from its own task
            await trio.sleep(0.01)
    [failure] = failures
    assert isinstance(failure, TLSHandshakeError)
    assert failure.reason == "TLSV1_ALERT_UNKNOWN_CA"
