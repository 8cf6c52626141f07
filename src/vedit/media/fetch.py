"""Safe download of media URLs: every URL is treated as hostile.

- http and https only; at most ``media_max_redirects`` redirects, each re-checked;
- the host name is resolved once, every address it resolves to is judged by
  :func:`classify_address`, and the connection goes to that same vetted
  address (TLS still verifies the name), so DNS rebinding has no gap;
- bytes are counted as they are read, whatever Content-Length says;
- connect, read and total timeouts.

``host:port`` pairs in ``media_allow`` skip the address check (local use, tests).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpcore

from vedit.errors import MediaDownloadFailed, MediaRefused, MediaTooLarge
from vedit.media.urls import BadMediaUrl, ascii_media_url, escape_invisible

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_REDIRECTS = {301, 302, 303, 307, 308}


def classify_address(address: str) -> str | None:
    """Why ``address`` must not be fetched (``"a private address"``...), or None if it is public."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is None and ip.teredo is not None:
            embedded = ip.teredo[1]
        if embedded is not None:
            reason = classify_address(str(embedded))
            return f"{reason} (IPv4 {embedded} inside IPv6)" if reason else None
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip in _METADATA:
        return "a link-local address (cloud metadata service)"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "not a public address"
    return None


ABORT_POLL_S = 0.5
"""How often a read that waits for bytes asks whether the download is still wanted."""


class _AbortableStream(httpcore.NetworkStream):
    """A connection whose reads wait in slices of :data:`ABORT_POLL_S`, calling ``abort``
    between them (it raises to stop the download), so a server that sends nothing cannot
    hold a cancelled task for the whole read timeout."""

    def __init__(self, inner: httpcore.NetworkStream, abort: Callable[[], None]) -> None:
        self._inner, self._abort = inner, abort

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            self._abort()
            left = ABORT_POLL_S if deadline is None else deadline - time.monotonic()
            try:
                return self._inner.read(max_bytes, max(0.0, min(ABORT_POLL_S, left)))
            except httpcore.ReadTimeout:
                if deadline is not None and time.monotonic() >= deadline:
                    raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._abort()
        self._inner.write(buffer, timeout)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        return _AbortableStream(
            self._inner.start_tls(ssl_context, server_hostname, timeout), self._abort
        )

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolves, vets, and connects to the vetted address; refuses everything else."""

    def __init__(
        self, allow: Iterable[str], label: str, abort: Callable[[], None] | None = None
    ) -> None:
        self._inner = httpcore.SyncBackend()
        self._allow = {a.lower() for a in allow}
        self._label = label
        self._abort = abort

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[object] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._connect(host, port, timeout, local_address, socket_options)
        return stream if self._abort is None else _AbortableStream(stream, self._abort)

    def _connect(
        self,
        host: str,
        port: int,
        timeout: float | None,
        local_address: str | None,
        socket_options: Iterable[object] | None,
    ) -> httpcore.NetworkStream:
        if f"{host}:{port}".lower() in self._allow or f"[{host}]:{port}".lower() in self._allow:
            return self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise MediaDownloadFailed(
                f"{self._label}: download failed: cannot resolve {host}: {exc.strerror}"
            ) from None
        addresses = list(dict.fromkeys(info[4][0] for info in infos))
        for address in addresses:
            reason = classify_address(address)
            if reason:
                shown = address if address == host else f"{host} resolves to {address},"
                pair = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                raise MediaRefused(
                    f"{self._label}: refused: {shown} is {reason} (only public addresses are "
                    f"fetched; {pair} is not on VEDIT_MEDIA_ALLOW / vedit serve --media-allow)"
                )
        last: Exception | None = None
        for address in addresses:
            try:
                return self._inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last or httpcore.ConnectError(f"no address for {host}")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


@dataclass(frozen=True)
class FetchLimits:
    """Caps and timeouts for one download."""

    max_bytes: int
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    total_timeout_s: float = 120.0
    max_redirects: int = 3


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """The default TLS context, made once: loading the CA bundle costs ~50 ms of CPU, which
    every download paid (a relay worker fetches three files a task, hundreds of tasks at
    once); a context is safe to share between threads."""
    return ssl.create_default_context()


def fetch_media(
    url: str,
    dest: Path,
    *,
    label: str,
    limits: FetchLimits,
    allow: Iterable[str] = (),
    abort: Callable[[], None] | None = None,
) -> int:
    """Download ``url`` into ``dest``; returns the byte count. ``label`` prefixes every error.

    ``abort`` is called at least every :data:`ABORT_POLL_S` while the download runs, even
    while no byte arrives; whatever it raises ends the download (a cancelled task).
    """
    deadline = time.monotonic() + limits.total_timeout_s
    timeouts = {
        "connect": limits.connect_timeout_s,
        "read": limits.read_timeout_s,
        "write": limits.read_timeout_s,
        "pool": limits.connect_timeout_s,
    }
    pool = httpcore.ConnectionPool(
        ssl_context=_tls_context(),
        network_backend=_GuardedBackend(allow, label, abort),
        max_connections=1,
    )
    with pool:
        for _hop in range(limits.max_redirects + 1):
            try:
                url = ascii_media_url(url)  # an IRI is fetched as the URI it stands for
            except BadMediaUrl as exc:
                raise MediaRefused(
                    f"{label}: refused: the URL {exc}: {escape_invisible(url[:200])}"
                ) from None
            parts = urlsplit(url)
            try:
                with pool.stream(
                    "GET",
                    url,
                    headers=[(b"User-Agent", b"vedit"), (b"Accept", b"*/*")],
                    extensions={"timeout": timeouts},
                ) as resp:
                    if resp.status in _REDIRECTS:
                        location = _header(resp.headers, b"location", text=True)
                        if not location:
                            raise MediaDownloadFailed(
                                f"{label}: download failed: HTTP {resp.status} without Location"
                            )
                        url = urljoin(url, location)
                        continue
                    if resp.status != 200:
                        where = f"{parts.netloc}{parts.path[:200]}"
                        raise MediaDownloadFailed(
                            f"{label}: download failed: HTTP {resp.status} from {where}"
                        )
                    declared = _header(resp.headers, b"content-length")
                    if declared and declared.isdigit() and int(declared) > limits.max_bytes:
                        raise MediaTooLarge(
                            f"{label}: file declares {int(declared):,} bytes; the limit is "
                            f"{limits.max_bytes:,}"
                        )
                    return _stream_to_file(resp.iter_stream(), dest, label, limits, deadline)
            except httpcore.UnsupportedProtocol as exc:
                raise MediaRefused(f"{label}: refused: {exc}") from None
            except (httpcore.ConnectTimeout, httpcore.PoolTimeout):
                raise MediaDownloadFailed(
                    f"{label}: download failed: {parts.netloc} did not accept a connection "
                    f"within {limits.connect_timeout_s:g} s"
                ) from None
            except httpcore.TimeoutException:
                raise MediaDownloadFailed(
                    f"{label}: download failed: {parts.netloc} sent nothing for "
                    f"{limits.read_timeout_s:g} s (VEDIT_MEDIA_READ_TIMEOUT_S)"
                ) from None
            except httpcore.ProtocolError as exc:
                raise MediaDownloadFailed(
                    f"{label}: download failed: bad HTTP answer from {parts.hostname}: {exc}"
                ) from None
            except httpcore.NetworkError as exc:
                raise MediaDownloadFailed(
                    f"{label}: download failed: cannot connect to {parts.hostname}: {exc}"
                ) from None
    raise MediaDownloadFailed(
        f"{label}: download failed: more than {limits.max_redirects} redirects"
    )


def _stream_to_file(
    chunks: Iterable[bytes], dest: Path, label: str, limits: FetchLimits, deadline: float
) -> int:
    total = 0
    with dest.open("wb") as out:
        for chunk in chunks:
            total += len(chunk)
            if total > limits.max_bytes:
                raise MediaTooLarge(
                    f"{label}: file is over the {limits.max_bytes:,}-byte limit "
                    f"(read {total:,} bytes so far)"
                )
            if time.monotonic() > deadline:
                raise MediaDownloadFailed(
                    f"{label}: download failed: not finished within "
                    f"{limits.total_timeout_s:g} s ({total:,} bytes read)"
                )
            out.write(chunk)
    return total


def _header(headers: list[tuple[bytes, bytes]], name: bytes, text: bool = False) -> str | None:
    """A header's value; ``text``: read as UTF-8 where it is (a Location may be an IRI)."""
    for key, value in headers:
        if key.lower() == name:
            if text:
                try:
                    return value.decode("utf-8")
                except UnicodeDecodeError:
                    pass
            return value.decode("latin-1")
    return None
