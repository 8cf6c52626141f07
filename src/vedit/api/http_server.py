"""vedit's HTTP server: uvicorn's httptools protocol with connection limits, and ``run_server``.

Here: the listening sockets (opened before anything else starts, so that a port in
use is reported at once), the per-process book of open connections, the protocol
that holds every connection to the ``http_*`` settings, and ``run_server``, which
``vedit serve`` calls. Not here: routes, and the wording of error bodies
(``errors.py`` owns both dialects' bodies; this module only picks one by path).

Each limit is enforced before the application sees the request:

- open connections per process and per client address: one over the cap is
  answered 503 with ``Retry-After`` as soon as it is accepted, and closed, so its
  descriptor is free again at once;
- the request line and headers over ``http_max_header_bytes``, or more than
  ``http_max_headers`` fields: 431, closed. While a head is read the parser is fed
  no more than what is left of the head's budget, so a body arriving in the same
  read is never counted as head;
- a head not complete ``http_header_timeout_s`` after the connection opened (or
  after the first byte of a later request on it): closed if nothing came, else 408;
- a body not complete ``http_body_timeout_s`` after its head (``upload_body_timeout_s``
  for an upload, ``api/uploads.py``): 408 and closed (the
  application's next ``receive`` is ``http.disconnect``), or just closed once the
  response has started;
- an idle keep-alive connection: closed after ``http_keepalive_s`` (uvicorn's timer).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import ipaddress
import json
import logging
import resource
import signal
import socket
import time
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.protocols.utils import get_remote_addr
from uvicorn.server import ServerState

from vedit.api.uploads import UPLOAD_PATHS
from vedit.config import Settings
from vedit.errors import HeadersTooLarge, RequestTimeout, TooManyConnections, VeditError

logger = logging.getLogger("vedit.http")

FD_RESERVE = 256
"""Descriptors kept for everything but client connections: database, worker pipes, logs."""

FDS_PER_CONNECTION = 2
"""A connection's socket, and the result file it may be downloading."""

REFUSAL_WARNING_EVERY_S = 10.0
"""Refused connections are logged at most this often, as a count (a flood must not flood the log)."""


@dataclasses.dataclass(frozen=True)
class ConnectionLimits:
    """The ``http_*`` settings, as the protocol reads them on every connection."""

    max_connections: int
    max_connections_per_client: int
    max_header_bytes: int
    max_headers: int
    header_timeout_s: float
    body_timeout_s: float
    keepalive_s: float
    upload_body_timeout_s: float = 1800.0  # for the bodies of UPLOAD_PATHS

    @classmethod
    def from_settings(cls, settings: Settings) -> ConnectionLimits:
        return cls(
            max_connections=settings.http_max_connections,
            max_connections_per_client=settings.http_max_connections_per_client,
            max_header_bytes=settings.http_max_header_bytes,
            max_headers=settings.http_max_headers,
            header_timeout_s=settings.http_header_timeout_s,
            body_timeout_s=settings.http_body_timeout_s,
            keepalive_s=settings.http_keepalive_s,
            upload_body_timeout_s=settings.upload_body_timeout_s,
        )

    def fitted_to_descriptor_limit(self) -> ConnectionLimits:
        """These limits, after making room for them in the process's file-descriptor limit.

        The soft limit is raised toward the hard one; where the hard limit is too low
        for ``max_connections``, the cap is lowered to what fits, with a warning.
        """
        wanted = FDS_PER_CONNECTION * self.max_connections + FD_RESERVE
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < wanted:
            raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
                soft = raised
        if soft == resource.RLIM_INFINITY or soft >= wanted:
            return self
        fitted = max(1, (soft - FD_RESERVE) // FDS_PER_CONNECTION)
        logger.warning(
            "the file-descriptor limit is %d: at most %d connections at once instead of "
            "VEDIT_HTTP_MAX_CONNECTIONS=%d (raise the hard limit, e.g. LimitNOFILE= or ulimit -Hn)",
            soft,
            fitted,
            self.max_connections,
        )
        return dataclasses.replace(self, max_connections=fitted)


def client_address(peer: tuple[str, int] | None) -> str:
    """What a client's connections are counted under: its IP address; for IPv6 its /64.

    One IPv6 host commonly holds a whole /64, so counting single addresses would let it
    open as many connections as it likes.
    """
    if peer is None:  # a Unix socket: one local client
        return ""
    host = peer[0]
    if ":" not in host:
        return host
    try:
        address = ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((int(address) >> 64 << 64, 64)))


class ConnectionBook:
    """This process's open connections, counted in all and per client address."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.open = 0
        self.open_by_client: dict[str, int] = {}
        self._refused_unlogged = 0
        self._warned_at = float("-inf")

    def admit(self, client: str) -> TooManyConnections | None:
        """Counts a new connection from ``client``, or says why it is refused (then it is not counted)."""
        held = self.open_by_client.get(client, 0)
        per_client = self.limits.max_connections_per_client
        if self.open >= self.limits.max_connections:
            refusal = TooManyConnections(
                f"the server holds {self.open:,} open connections, its limit; retry later",
                headers={"Retry-After": "1"},
            )
        elif per_client and held >= per_client:
            refusal = TooManyConnections(
                f"this client address holds {held:,} open connections, the limit per client; "
                "close one or retry later",
                headers={"Retry-After": "1"},
            )
        else:
            self.open += 1
            self.open_by_client[client] = held + 1
            return None
        self._note_refusal(client, refusal.message)
        return refusal

    def release(self, client: str) -> None:
        """Uncounts a connection that ``admit`` counted."""
        self.open -= 1
        left = self.open_by_client[client] - 1
        if left:
            self.open_by_client[client] = left
        else:
            del self.open_by_client[client]

    def _note_refusal(self, client: str, message: str) -> None:
        self._refused_unlogged += 1
        now = time.monotonic()
        if now - self._warned_at >= REFUSAL_WARNING_EVERY_S:
            logger.warning(
                "refused %d connection(s) with 503; the last from %s: %s",
                self._refused_unlogged,
                client or "a Unix socket",
                message,
            )
            self._refused_unlogged = 0
            self._warned_at = now


def error_response_bytes(
    error: VeditError, path: str, default_headers: list[tuple[bytes, bytes]]
) -> bytes:
    """A complete ``Connection: close`` response carrying ``error`` in the dialect of ``path``."""
    body = json.dumps(error.body_for_path(path), ensure_ascii=False, separators=(",", ":")).encode()
    headers = [
        *default_headers,
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        *((name.lower().encode(), value.encode()) for name, value in error.headers.items()),
    ]
    parts = [STATUS_LINE[error.http_status]]
    for name, value in headers:
        parts += [name, b": ", value, b"\r\n"]
    parts += [b"\r\n", body]
    return b"".join(parts)


class LimitedConfig(uvicorn.Config):
    """uvicorn's Config with vedit's protocol, its limits and this process's connection book."""

    def __init__(self, app: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(
            app, http=LimitedHttpToolsProtocol, timeout_keep_alive=limits.keepalive_s, **kwargs
        )
        self.connection_limits = limits
        self.connection_book = ConnectionBook(limits)


class _TooManyHeaders(Exception):
    """Raised inside a parser callback to stop the parser at a head with too many fields."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, holding each connection to vedit's limits (see above)."""

    def __init__(
        self,
        config: LimitedConfig,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._limits = config.connection_limits
        self._max_head_bytes = self._limits.max_header_bytes
        self._max_headers = self._limits.max_headers
        self._book = config.connection_book
        self._counted_as: str | None = None
        # Between the end of one request and the end of the next one's head.
        self._reading_head = True
        self._head_bytes = 0
        # A byte of a request has arrived, and the request is not complete yet.
        self._request_begun = False
        # The head or body timer, whichever runs.
        self._deadline: asyncio.TimerHandle | None = None
        self._body_timeout_s = self._limits.body_timeout_s  # this request's

    # --- connection --------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        client = client_address(get_remote_addr(transport))
        refusal = self._book.admit(client)
        if refusal is not None:
            self.transport = transport
            transport.write(error_response_bytes(refusal, "", self.server_state.default_headers))
            transport.close()
            return
        self._counted_as = client
        super().connection_made(transport)
        self._deadline = self.loop.call_later(self._limits.header_timeout_s, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        if self._counted_as is not None:
            self._book.release(self._counted_as)
            self._counted_as = None
        super().connection_lost(exc)

    # --- reading -----------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._counted_as is None:  # refused: closing, and never read
            return
        self._unset_keepalive_if_required()
        room = (
            self._max_head_bytes - self._head_bytes if self._reading_head else self._max_head_bytes
        )
        try:
            if len(data) <= room:  # the usual read: all of it fits the head's budget
                if self._reading_head:
                    self._head_bytes += len(data)
                self.parser.feed_data(data)
            else:
                self._feed_in_pieces(memoryview(data))
        except httptools.HttpParserError as exc:
            if isinstance(exc.__context__, _TooManyHeaders):
                self._close_in_head(self._too_many_headers())
                return
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
            return
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        # A head or body left unfinished by this read gets its timer, if none runs.
        if self._reading_head:
            if self._head_bytes >= self._max_head_bytes:
                self._close_in_head(self._head_too_large())
            elif self._request_begun:
                if len(self.headers) > self._max_headers:
                    self._close_in_head(self._too_many_headers())
                elif self._deadline is None:
                    self._deadline = self.loop.call_later(
                        self._limits.header_timeout_s, self._head_timed_out
                    )
        elif self._deadline is None:
            self._deadline = self.loop.call_later(self._body_timeout_s, self._body_timed_out)

    def _feed_in_pieces(self, view: memoryview) -> None:
        """Feeds a read larger than the head's budget: while a head is read, no more than
        what is left of its budget, so that a body in the same read is never counted as
        head; and never more than a head's budget at once, so that a head pipelined
        behind a body is buffered at most twice its budget before 431."""
        while view:
            if self._reading_head:
                if self._head_bytes >= self._max_head_bytes or (
                    self._request_begun and len(self.headers) > self._max_headers
                ):
                    return  # the caller answers 431
                piece = view[: self._max_head_bytes - self._head_bytes]
                self._head_bytes += len(piece)
            else:
                piece = view[: self._max_head_bytes]
            self.parser.feed_data(piece)
            view = view[len(piece) :]

    # The parser's callbacks; the base class is called directly (cheaper than super()).

    def on_message_begin(self) -> None:
        self._request_begun = True
        HttpToolsProtocol.on_message_begin(self)

    def on_headers_complete(self) -> None:
        if len(self.headers) > self._max_headers:
            raise _TooManyHeaders
        self._reading_head = False
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        HttpToolsProtocol.on_headers_complete(self)
        self._body_timeout_s = (
            self._limits.upload_body_timeout_s
            if self.scope.get("path") in UPLOAD_PATHS
            else self._limits.body_timeout_s
        )

    def on_message_complete(self) -> None:
        self._reading_head = True
        self._head_bytes = 0
        self._request_begun = False
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        HttpToolsProtocol.on_message_complete(self)

    # --- timers ------------------------------------------------------------

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _head_timed_out(self) -> None:
        self._deadline = None
        if not self._request_begun:
            # Nothing of a request came: no answer is owed.
            self.transport.close()
            return
        self._close_in_head(
            RequestTimeout(
                f"the request line and headers did not arrive within "
                f"{self._limits.header_timeout_s:g} s"
            )
        )

    def _body_timed_out(self) -> None:
        self._deadline = None
        cycle = self.cycle
        if cycle is None or cycle.response_started or self.pipeline:
            self.transport.close()
            return
        # The application's next receive() is http.disconnect; what it sends is dropped.
        cycle.disconnected = True
        cycle.message_event.set()
        error = RequestTimeout(
            f"the request body did not arrive within {self._body_timeout_s:g} s of its headers"
        )
        self.transport.write(
            error_response_bytes(error, cycle.scope["path"], self.server_state.default_headers)
        )
        self.transport.close()

    # --- refusals ----------------------------------------------------------

    def _head_too_large(self) -> HeadersTooLarge:
        return HeadersTooLarge(
            f"the request line and headers are over {self._max_head_bytes:,} bytes"
        )

    def _too_many_headers(self) -> HeadersTooLarge:
        return HeadersTooLarge(
            f"the request has {len(self.headers):,} header fields; at most "
            f"{self._max_headers:,} are accepted"
        )

    def _close_in_head(self, error: VeditError) -> None:
        """Answers ``error`` for the head being read, then closes the connection.

        If an earlier pipelined request's response is still being written, nothing
        is added to it: the connection is just closed.
        """
        if self.cycle is None or self.cycle.response_complete:
            path = self.url.decode("latin-1") if self._request_begun else ""
            self.transport.write(
                error_response_bytes(error, path, self.server_state.default_headers)
            )
        self.transport.close()


# --- running -------------------------------------------------------------------


def open_listeners(host: str, port: int, backlog: int = 2048) -> list[socket.socket]:
    """Listening sockets on every address ``host`` resolves to, as asyncio would open them.

    Called before anything else starts, so that a port in use (``OSError`` with
    ``errno.EADDRINUSE``) is reported before any work is done.
    """
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    listeners: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            listeners.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
    except OSError:
        for sock in listeners:
            sock.close()
        raise
    return listeners


def run_server(app: Any, settings: Settings, listeners: list[socket.socket]) -> None:
    """Serves ``app`` on ``listeners`` with vedit's connection limits until SIGINT or SIGTERM."""
    limits = ConnectionLimits.from_settings(settings).fitted_to_descriptor_limit()
    config = LimitedConfig(app, limits, log_level="info", access_log=False, ws="none")
    server = uvicorn.Server(config)
    _stop_on_signals(server)
    for sock in listeners:
        logger.info("listening on %s", _url_of(sock))
    logger.info(
        "connections: %d at once, %s per client; heads: %d bytes, %d fields; "
        "timeouts: head %g s, body %g s, keep-alive %g s",
        limits.max_connections,
        limits.max_connections_per_client or "no cap",
        limits.max_header_bytes,
        limits.max_headers,
        limits.header_timeout_s,
        limits.body_timeout_s,
        limits.keepalive_s,
    )
    # Start-up objects never die: keep them out of the collector's way on the hot path.
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)
    server.run(sockets=listeners)


def _url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if sock.family == socket.AF_INET6 else f"http://{host}:{port}"


def _stop_on_signals(server: uvicorn.Server) -> None:
    """SIGINT / SIGTERM end ``server.run()``, so that the caller can stop its workers after it.

    uvicorn's own handlers re-raise the signal once the server is down, which
    would end the process before its worker processes are stopped.
    """

    def handle(_signum: int, _frame: object) -> None:
        if server.should_exit:
            server.force_exit = True
        server.should_exit = True

    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handle)
