"""vedit's HTTP server: uvicorn's httptools protocol with connection limits, and ``run_server``.

Here: the listening sockets (opened before anything else starts, so that a port in
use is reported at once), the per-process book of open connections, the protocol
that holds every connection to the ``http_*`` settings, and ``run_server``, which
``vedit serve`` calls. Not here: routes, and the wording of error bodies
(``api/wire.py`` owns both dialects' bodies; a request answered here, before it is
routed, speaks its path's dialect).

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
- a body not complete ``http_body_timeout_s`` after its head: 408 and closed (the
  application's next ``receive`` is ``http.disconnect``), or just closed once the
  response has started;
- an upload (``POST`` to ``UPLOAD_PATHS``, ``api/uploads.py``: bodies of up to 100 MB,
  read before a key is checked or, in DashScope's flow, with no key at all) holds one of
  ``http_max_upload_connections`` from its head to its answer: one more is answered 503
  at its head; a body declared larger than an upload can be is 413 at its head; and its
  body must arrive at ``upload_min_rate_bps`` on average once ``upload_rate_grace_s`` has
  passed (time the server itself stopped reading is not counted), else 408. So uploads,
  however slow or many, never hold the connections that creates, queries and downloads need;
- an answer sent before its request's body was read (a 401, 403 or 413 from the headers)
  carries ``Connection: close``: the rest of the body is not read, the connection is
  half-closed and what still comes is discarded for at most ``LINGER_S``, then closed;
- an idle keep-alive connection: closed after ``http_keepalive_s`` (uvicorn's timer).

Every answer written here is JSON in the dialect of the request's path, uvicorn's own
400 for a request that is not HTTP included, and carries ``X-Content-Type-Options:
nosniff`` like every answer of the application (``api/app.py``).
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
import urllib.parse
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_remote_addr
from uvicorn.server import ServerState

from vedit.api.multipart import FORM_ALLOWANCE
from vedit.api.uploads import UPLOAD_PATHS
from vedit.api.wire import dialect_of_path, error_headers
from vedit.config import Settings
from vedit.errors import (
    BodyTooLarge,
    HeadersTooLarge,
    InvalidRequest,
    RequestTimeout,
    TooManyConnections,
    VeditError,
)

logger = logging.getLogger("vedit.http")

FD_RESERVE = 256
"""Descriptors kept for everything but client connections: database, worker pipes, logs."""

FDS_PER_CONNECTION = 2
"""A connection's socket, and the result file it may be downloading."""

REFUSAL_WARNING_EVERY_S = 10.0
"""Refused connections are logged at most this often, as a count (a flood must not flood the log)."""

LINGER_S = 2.0
"""How long a connection answered before its body was read goes on discarding the body
before it is closed. Closing a socket with unread bytes resets the connection, and a reset
may destroy the answer before the client has read it."""

NOSNIFF = (b"x-content-type-options", b"nosniff")


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
    # Uploads: POST to UPLOAD_PATHS.
    max_upload_connections: int = 100
    upload_min_rate_bps: int = 64 * 1024
    upload_rate_grace_s: float = 5.0
    upload_max_body_bytes: int = 100_000_000 + FORM_ALLOWANCE

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
            max_upload_connections=settings.http_max_upload_connections,
            upload_min_rate_bps=settings.upload_min_rate_bps,
            upload_rate_grace_s=settings.upload_rate_grace_s,
            upload_max_body_bytes=max(settings.video_max_bytes, settings.image_max_bytes)
            + FORM_ALLOWANCE,
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
        self.uploads = 0  # connections in an upload, from its head to its answer
        self._refused_unlogged = 0
        self._warned_at = float("-inf")

    def admit(self, client: str) -> TooManyConnections | None:
        """Counts a new connection from ``client``, or says why it is refused (then it is not counted)."""
        held = self.open_by_client.get(client, 0)
        per_client = self.limits.max_connections_per_client
        if self.open >= self.limits.max_connections:
            refusal = TooManyConnections(
                f"the server holds {self.open:,} open connections, its limit; retry later",
                retry_after_s=1,
            )
        elif per_client and held >= per_client:
            refusal = TooManyConnections(
                f"this client address holds {held:,} open connections, the limit per client; "
                "close one or retry later",
                retry_after_s=1,
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

    def admit_upload(self, client: str) -> TooManyConnections | None:
        """Counts an upload on a connection already admitted, or says why it is refused."""
        if self.uploads < self.limits.max_upload_connections:
            self.uploads += 1
            return None
        refusal = TooManyConnections(
            f"the server holds {self.uploads:,} uploads at once, its limit for uploads "
            "(VEDIT_HTTP_MAX_UPLOAD_CONNECTIONS); retry later",
            retry_after_s=1,
        )
        self._note_refusal(client, refusal.message)
        return refusal

    def release_upload(self) -> None:
        """Uncounts an upload that ``admit_upload`` counted."""
        self.uploads -= 1

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
    status, content = dialect_of_path(path).render(error)
    body = json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode()
    headers = [
        *default_headers,
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        NOSNIFF,
        *((name.lower().encode(), value.encode()) for name, value in error_headers(error).items()),
    ]
    parts = [STATUS_LINE[status]]
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


class _Refused(Exception):
    """Raised inside a parser callback to stop the parser at a head answered with ``error``
    before the application sees it (an upload over the budget or over the size)."""

    def __init__(self, error: VeditError) -> None:
        super().__init__(error.message)
        self.error = error


class _TimedFlowControl(FlowControl):
    """uvicorn's flow control, which also counts how long reading has been paused (the
    application had not taken the body so far yet): an upload's rate is the client's, so
    that time is not counted against it."""

    def __init__(self, transport: asyncio.Transport) -> None:
        super().__init__(transport)
        self._paused_s = 0.0
        self._paused_at = 0.0

    def pause_reading(self) -> None:
        if not self.read_paused:
            self._paused_at = time.monotonic()
        super().pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused:
            self._paused_s += time.monotonic() - self._paused_at
        super().resume_reading()

    def paused_s(self, now: float) -> float:
        """Seconds reading has been paused since the connection opened, until ``now``."""
        return self._paused_s + (now - self._paused_at if self.read_paused else 0.0)


def _request_path(url: bytes) -> str:
    """The path of a request target, decoded as uvicorn decodes it for the application."""
    path = httptools.parse_url(url).path.decode("ascii")
    return urllib.parse.unquote(path) if "%" in path else path


def _parser_complaint(exc: httptools.HttpParserError) -> str:
    """What is wrong with a request the parser refused, in a sentence."""
    if isinstance(exc, httptools.HttpParserCallbackError):  # e.g. a target that is not ASCII
        return "the request is not valid HTTP/1.1: its target cannot be read"
    reason = str(exc).strip().rstrip(".") or "it cannot be parsed"
    return f"the request is not valid HTTP/1.1: {reason[:1].lower()}{reason[1:]}"


def _declares_body(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if (name == b"content-length" and value.strip(b" \t0")) or name == b"transfer-encoding":
            return True
    return False


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
        # The head, body or linger timer, whichever runs.
        self._deadline: asyncio.TimerHandle | None = None
        # The upload in progress on this connection, if any: its cycle (None until the
        # application is handed it), its clock and the bytes of its body so far.
        self._upload = False
        self._upload_cycle: RequestResponseCycle | None = None
        self._upload_started = 0.0
        self._upload_paused_before = 0.0
        self._body_bytes = 0
        # Answered before its body was read: what still arrives is discarded.
        self._lingering = False

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
        self.flow = _TimedFlowControl(transport)
        self._deadline = self.loop.call_later(self._limits.header_timeout_s, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        self._end_upload()
        if self._counted_as is not None:
            self._book.release(self._counted_as)
            self._counted_as = None
        super().connection_lost(exc)

    # --- reading -----------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._counted_as is None or self._lingering:  # refused, or answered: never read
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
            elif isinstance(exc.__context__, _Refused):
                self._answer_and_linger(exc.__context__.error, self._path())
            else:
                self.logger.warning("Invalid HTTP request received: %s", exc)
                self._close_in_head(InvalidRequest(_parser_complaint(exc)))
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
            if self._upload:
                self._deadline = self.loop.call_later(
                    self._limits.upload_rate_grace_s, self._check_upload_rate
                )
            else:
                self._deadline = self.loop.call_later(
                    self._limits.body_timeout_s, self._body_timed_out
                )

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

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to what is not HTTP, in the dialect's JSON instead of text."""
        self._close_in_head(InvalidRequest(f"the request is not valid HTTP/1.1: {msg}"))

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
        upload = self.parser.get_method() == b"POST" and _request_path(self.url) in UPLOAD_PATHS
        if upload:
            self._begin_upload()  # raises _Refused
        HttpToolsProtocol.on_headers_complete(self)
        cycle = self.cycle
        if upload:
            self._upload_cycle = cycle
        if _declares_body(self.headers):
            self._close_if_answered_early(cycle)

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        HttpToolsProtocol.on_body(self, body)

    def on_message_complete(self) -> None:
        self._reading_head = True
        self._head_bytes = 0
        self._request_begun = False
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        HttpToolsProtocol.on_message_complete(self)

    def on_response_complete(self) -> None:
        if self._upload_cycle is not None and self._upload_cycle.response_complete:
            self._end_upload()
        HttpToolsProtocol.on_response_complete(self)

    # --- uploads -----------------------------------------------------------

    def _begin_upload(self) -> None:
        """Counts the upload whose head was just read, and starts its clock; raises
        :class:`_Refused` for one over the budget, or declared larger than an upload can be.

        A connection holds one upload slot at most: an upload pipelined behind another one
        whose answer is not complete yet keeps the slot the first took (it is given back
        when the last upload's answer is complete, or the connection is gone); counting it
        again would leave a slot counted for good."""
        declared = next((v for n, v in self.headers if n == b"content-length"), b"")
        if declared.isdigit() and int(declared) > self._limits.upload_max_body_bytes:
            raise _Refused(
                BodyTooLarge(
                    f"the upload's body is {int(declared):,} bytes (Content-Length); at most "
                    f"{self._limits.upload_max_body_bytes:,} are accepted (the largest file "
                    "allowed, VEDIT_VIDEO_MAX_BYTES or VEDIT_IMAGE_MAX_BYTES, and its form)"
                )
            )
        if not self._upload:
            refusal = self._book.admit_upload(self._counted_as or "")
            if refusal is not None:
                raise _Refused(refusal)
        self._upload = True
        self._upload_started = time.monotonic()
        self._upload_paused_before = self.flow.paused_s(self._upload_started)
        self._body_bytes = 0

    def _end_upload(self) -> None:
        """Uncounts this connection's upload, if it holds one (its answer is complete, or
        the connection is gone)."""
        if self._upload:
            self._upload = False
            self._upload_cycle = None
            self._book.release_upload()

    def _check_upload_rate(self) -> None:
        """408 for an upload's body that arrives slower than the minimum rate on average,
        once the grace has passed; else the next check, when the bytes so far fall due."""
        self._deadline = None
        now = time.monotonic()
        paused = self.flow.paused_s(now) - self._upload_paused_before
        elapsed = now - self._upload_started - paused
        rate, grace = self._limits.upload_min_rate_bps, self._limits.upload_rate_grace_s
        if self.flow.read_paused or self._body_bytes >= rate * (elapsed - grace):
            due_at = grace + self._body_bytes / rate  # in seconds of the clock above
            self._deadline = self.loop.call_later(
                max(1.0, due_at - elapsed), self._check_upload_rate
            )
            return
        self._answer_in_body(
            RequestTimeout(
                f"the upload's body arrived at {self._body_bytes / max(elapsed, 1e-3):,.0f} "
                f"bytes/s on average ({self._body_bytes:,} bytes in {elapsed:.1f} s); at "
                f"least {rate:,} bytes/s (VEDIT_UPLOAD_MIN_RATE_BPS) is required after the "
                f"first {grace:g} s"
            )
        )

    # --- answers before the body -------------------------------------------

    def _close_if_answered_early(self, cycle: RequestResponseCycle) -> None:
        """An answer that starts before ``cycle``'s body was all received says
        ``Connection: close``; once it is sent, the connection lingers, then closes. The
        rest of the body is never read into the request."""
        send = cycle.send
        early = False

        async def send_then_close(message: Any) -> None:
            nonlocal early
            if message["type"] == "http.response.start" and cycle.more_body:
                early = True
                headers = [*message.get("headers", ()), (b"connection", b"close")]
                message = {**message, "headers": headers}
            await send(message)
            if not early:
                return
            if message["type"] == "http.response.start":
                cycle.keep_alive = True  # closed by _linger, not at once by the cycle
            elif cycle.response_complete and not self._lingering:
                self._linger()

        cycle.send = send_then_close  # type: ignore[method-assign]

    def _linger(self) -> None:
        """Half-closes the connection after its last answer, discards what still arrives,
        and closes it when the client does, or after ``LINGER_S``."""
        self._lingering = True
        self._cancel_deadline()
        self._unset_keepalive_if_required()
        self._end_upload()
        transport = self.transport
        if transport.is_closing():
            return
        if transport.can_write_eof():
            transport.write_eof()
        self.flow.resume_reading()
        self._deadline = self.loop.call_later(LINGER_S, transport.close)

    def _answer_and_linger(self, error: VeditError, path: str) -> None:
        """Answers ``error`` for the request whose head was just read, then lingers; after
        an earlier pipelined answer still being written, just closes."""
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(
                error_response_bytes(error, path, self.server_state.default_headers)
            )
            self._linger()
        else:
            self.transport.close()

    def _path(self) -> str:
        return self.url.decode("latin-1") if self._request_begun else ""

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
        self._answer_in_body(
            RequestTimeout(
                f"the request body did not arrive within {self._limits.body_timeout_s:g} s "
                "of its headers"
            )
        )

    def _answer_in_body(self, error: VeditError) -> None:
        """Answers ``error`` for the request whose body is being read, and closes the
        connection (just closes it once an answer has started)."""
        cycle = self.cycle
        if cycle is None or cycle.response_started or self.pipeline:
            self.transport.close()
            return
        # The application's next receive() is http.disconnect; what it sends is dropped.
        cycle.disconnected = True
        cycle.message_event.set()
        self.transport.write(
            error_response_bytes(error, cycle.scope["path"], self.server_state.default_headers)
        )
        self._linger()

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
            self.transport.write(
                error_response_bytes(error, self._path(), self.server_state.default_headers)
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
        "connections: %d at once, %s per client, %d in uploads; heads: %d bytes, %d fields; "
        "timeouts: head %g s, body %g s, keep-alive %g s; uploads at %d bytes/s or more after %g s",
        limits.max_connections,
        limits.max_connections_per_client or "no cap",
        limits.max_upload_connections,
        limits.max_header_bytes,
        limits.max_headers,
        limits.header_timeout_s,
        limits.body_timeout_s,
        limits.keepalive_s,
        limits.upload_min_rate_bps,
        limits.upload_rate_grace_s,
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
