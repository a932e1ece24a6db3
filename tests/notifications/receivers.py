"""Real servers on 127.0.0.1 that notifications are delivered to: an HTTP receiver (webhooks and
the Telegram / WhatsApp APIs) and an SMTP server. Both record what arrives, in arrival order."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import socket
import ssl
import tempfile
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

WAIT_S = 30  # generous: how long a test waits for something that should arrive


@dataclass(frozen=True)
class Request:
    seq: int  # arrival order across every path of the receiver
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HttpReceiver:
    """Answers 200 with {"ok": true}, unless told otherwise per path: a script of statuses
    (status or (status, JSON body)) consumed one per request, or hang until released."""

    def __init__(self):
        self.requests: list[Request] = []
        self._scripts: dict[str, deque] = {}
        self._hanging: dict[str, asyncio.Event] = {}
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        for event in self._hanging.values():
            event.set()
        await self._runner.cleanup()

    def respond(self, path: str, *answers: int | tuple[int, Any]) -> None:
        self._scripts.setdefault(path, deque()).extend(answers)

    def hang(self, path: str) -> asyncio.Event:
        """Requests to `path` get no answer until the returned event is set."""
        return self._hanging.setdefault(path, asyncio.Event())

    def at(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    async def wait_for(self, path: str, count: int = 1) -> list[Request]:
        async with asyncio.timeout(WAIT_S):
            async with self._arrived:
                await self._arrived.wait_for(lambda: len(self.at(path)) >= count)
        return self.at(path)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        async with self._arrived:
            self.requests.append(Request(len(self.requests), request.method, request.path, dict(request.headers),
                                         body))
            self._arrived.notify_all()
        if request.path in self._hanging:
            await self._hanging[request.path].wait()
        script = self._scripts.get(request.path)
        answer = script.popleft() if script else 200
        status, document = answer if isinstance(answer, tuple) else (answer, {"ok": 200 <= answer < 300})
        return web.json_response(document, status=status)


@dataclass(frozen=True)
class Mail:
    mail_from: str
    recipients: list[str]
    content: bytes
    login: str | None  # who authenticated, if anybody


class SmtpReceiver:
    """aiosmtpd in its own thread, recording every accepted message. With `tls` it offers
    STARTTLS with a self-signed certificate for 127.0.0.1 (`client_tls` trusts it) and requires
    it, and then accepts the login `credentials`."""

    def __init__(self, *, tls: bool = False, credentials: tuple[str, str] | None = None):
        self.messages: list[Mail] = []
        self.client_tls: ssl.SSLContext | None = None
        kwargs: dict[str, Any] = {}
        if tls:
            server_tls, self.client_tls = _self_signed_tls()
            kwargs |= {"tls_context": server_tls, "require_starttls": True}
        if credentials:
            kwargs |= {"authenticator": _authenticator(credentials), "auth_required": True}
        self.port = free_port()
        self._controller = Controller(_Recorder(self.messages), hostname="127.0.0.1", port=self.port, **kwargs)

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()

    async def wait_for(self, count: int = 1) -> list[Mail]:
        async with asyncio.timeout(WAIT_S):
            while len(self.messages) < count:  # appended by the server's thread
                await asyncio.sleep(0.02)
        return list(self.messages)


class _Recorder:
    def __init__(self, messages: list[Mail]):
        self.messages = messages

    async def handle_DATA(self, server, session, envelope) -> str:
        login = session.auth_data.login.decode() if isinstance(session.auth_data, LoginPassword) else None
        self.messages.append(Mail(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content, login))
        return "250 Message accepted for delivery"


def _authenticator(credentials: tuple[str, str]) -> Callable:
    login, password = credentials

    def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
        ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
            login.encode(), password.encode())
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return authenticate


def free_port() -> int:
    """A port nobody listens on (until somebody binds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _self_signed_tls() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context, client context that trusts exactly this certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as tmp:  # load_cert_chain reads files only
        cert_file, key_file = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert_file.write_bytes(cert_pem)
        key_file.write_bytes(key_pem)
        server.load_cert_chain(cert_file, key_file)
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return server, client
