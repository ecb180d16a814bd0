"""Why kafka-python cannot connect, found out in about a second.

kafka-python's bootstrap swallows the reason it failed (a wrong password, an
unknown CA, a listener that wants SASL), logs it, retries with backoff, and
after `bootstrap_timeout_ms` raises the same `KafkaTimeoutError` for all of
them. So before its first client, the kafka-python engine walks the same path
once itself, on one plain socket, with kafka-python's own request classes and
SCRAM client, and stops at the first step that fails:

    TCP connect -> TLS handshake (SSL, SASL_SSL) -> SASL handshake + SCRAM (SASL_*)
    -> an ApiVersions and a Metadata request

Each failure becomes the one typed error that names it.
"""

from __future__ import annotations

import socket
import ssl
import struct
from typing import Any

from kafka.net.sasl.scram import ScramClient
from kafka.protocol.metadata import MetadataRequest, MetadataResponse
from kafka.protocol.metadata.api_versions import ApiVersionsRequest, ApiVersionsResponse
from kafka.protocol.sasl import (
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
    SaslHandshakeRequest,
    SaslHandshakeResponse,
)

from bus.adapters.kafka._common import SASL_PROTOCOLS, TLS_PROTOCOLS, bootstrap_addresses, dropped, unreachable
from bus.config import KafkaSettings
from bus.errors import AuthenticationFailed, KafkaUnavailable, ProtocolMismatch, TlsFailed

_ILLEGAL_SASL_STATE = 34
_UNSUPPORTED_SASL_MECHANISM = 33
_SASL_AUTHENTICATION_FAILED = 58


class _Channel:
    """Request/response over one socket, framed as Kafka frames them."""

    def __init__(self, sock: socket.socket | ssl.SSLSocket, client_id: str) -> None:
        self.sock = sock
        self.client_id = client_id
        self.correlation = 0

    def ask(self, request: Any, response_type: Any, version: int) -> Any:
        self.correlation += 1
        request.with_header(correlation_id=self.correlation, client_id=self.client_id)
        self.sock.sendall(request.encode(version=version, header=True, framed=True))
        (size,) = struct.unpack(">i", self._read(4))
        return response_type.decode(self._read(size), version=version, header=True)

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))  # ConnectionError, ssl.SSLError: the peer hung up
            if not chunk:
                raise ConnectionError("connection closed")
            data += chunk
        return data


def check_connection(settings: KafkaSettings) -> None:
    """Raise the typed error that explains why clients with `settings` cannot work."""
    timeout = min(5.0, max(1.0, settings.bootstrap_timeout_ms / 1000))
    for host, port in bootstrap_addresses(settings):
        try:
            raw = socket.create_connection((host, port), timeout=timeout)
        except OSError:
            continue
        with raw:
            _walk(raw, host, settings)
        return
    raise unreachable(settings)


def _walk(raw: socket.socket, host: str, settings: KafkaSettings) -> None:
    where = f"{host}:{raw.getpeername()[1]}"
    sock: socket.socket | ssl.SSLSocket = raw
    if settings.security_protocol in TLS_PROTOCOLS:
        sock = _tls(raw, host, where, settings)
    channel = _Channel(sock, settings.client_id)
    try:
        if settings.security_protocol in SASL_PROTOCOLS:
            _authenticate(channel, where, settings)
        channel.ask(ApiVersionsRequest(), ApiVersionsResponse, 0)
        channel.ask(MetadataRequest(topics=[]), MetadataResponse, 1)
    except (ConnectionError, ssl.SSLError):  # the peer closed (or sent nothing) before answering
        raise dropped(settings) from None
    except TimeoutError:
        raise KafkaUnavailable(f"{where} accepted a connection but did not answer as Kafka "
                               f"({settings.security_protocol}) in time") from None


def _tls(raw: socket.socket, host: str, where: str, settings: KafkaSettings) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None)
    try:
        return context.wrap_socket(raw, server_hostname=host)
    except ssl.SSLCertVerificationError as exc:
        ca = f"CA file {settings.ssl_cafile}" if settings.ssl_cafile else "the system's CAs"
        raise TlsFailed(f"TLS with {where} failed: its certificate is not trusted by {ca} "
                        f"({exc.verify_message})") from None
    except (ssl.SSLError, ConnectionError, TimeoutError) as exc:
        raise TlsFailed(f"TLS with {where} failed: no TLS handshake came back; is it a "
                        f"PLAINTEXT listener? ({exc})") from None


def _authenticate(channel: _Channel, where: str, settings: KafkaSettings) -> None:
    mechanism = settings.sasl_mechanism
    handshake = channel.ask(SaslHandshakeRequest(mechanism=mechanism), SaslHandshakeResponse, 1)
    if handshake.error_code == _ILLEGAL_SASL_STATE or (
            handshake.error_code == _UNSUPPORTED_SASL_MECHANISM and not handshake.mechanisms):
        raise ProtocolMismatch(f"{where} does not speak SASL (it refused the SASL handshake): "
                               "use the SASL listener's port, or --security-protocol PLAINTEXT/SSL")
    if handshake.error_code == _UNSUPPORTED_SASL_MECHANISM:
        raise ProtocolMismatch(f"{where} does not offer SASL mechanism {mechanism}; it offers "
                               f"{', '.join(handshake.mechanisms)}")
    if not mechanism.startswith("SCRAM-"):
        return  # other mechanisms: the client's own bootstrap reports them
    assert settings.sasl_username is not None and settings.sasl_password is not None
    scram = ScramClient(settings.sasl_username, settings.sasl_password.get_secret_value(), mechanism)
    first = channel.ask(SaslAuthenticateRequest(auth_bytes=scram.first_message()), SaslAuthenticateResponse, 1)
    if first.error_code == 0:
        scram.process_server_first_message(first.auth_bytes)
        final = channel.ask(SaslAuthenticateRequest(auth_bytes=scram.final_message()),
                            SaslAuthenticateResponse, 1)
        if final.error_code == 0:
            return
        first = final
    raise AuthenticationFailed(f"authentication failed at {where} as {settings.sasl_username!r}: wrong "
                               f"user name or password ({first.error_message or first.error_code})")
