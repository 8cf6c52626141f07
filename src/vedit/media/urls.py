"""Media URLs: the one check of their syntax, and their ASCII form for the wire.

A client may send an IRI (``https://bücher.example/clip ü.mp4``): the host is
IDNA-encoded and the path and query percent-encoded (UTF-8), so what is
fetched is the resource the client named. What no fetch could mean — userinfo,
a port outside 1-65535, unbalanced IPv6 brackets, whitespace, control
characters or empty labels in the host — is refused with the reason. The API
checks every URL with :func:`ascii_media_url` at create time (a 400 naming the
field) and the fetcher uses it again on every hop, so both agree.

Which addresses may be fetched is not decided here: see ``media/fetch.py``.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import quote, urlsplit

MAX_URL_LENGTH = 2048
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_LABEL = re.compile(r"[A-Za-z0-9_-]+")
# RFC 3986 characters left as they are in the path and query (``%`` keeps escapes as sent).
_PATH_SAFE = "/%!$&'()*+,;=:@-._~"
_QUERY_SAFE = _PATH_SAFE + "?"
# The common case, already in its ASCII form: a lower-case host name or IPv4 address, an
# optional port, and a path and query of characters that need no escaping.
_PLAIN = re.compile(
    r"https?://((?:[a-z0-9_-]{1,63}\.)*[a-z0-9_-]{1,63}\.?)(?::([0-9]{1,5}))?"
    r"(/[A-Za-z0-9/%!$&'()*+,;=:@._~?-]*)?"
)


class BadMediaUrl(ValueError):
    """Why a string is not a media URL that can be fetched (a phrase: "has no host")."""


def escape_invisible(text: str) -> str:
    """``text`` with every control character and lone surrogate written as a ``\\u`` escape."""
    return _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def _shown(text: str) -> str:
    """``text`` in double quotes, every control character and lone surrogate escaped."""
    return '"' + escape_invisible(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


def ascii_media_url(url: str) -> str:
    """The ASCII form of the absolute http(s) URL ``url``; raises :class:`BadMediaUrl`."""
    plain = _PLAIN.fullmatch(url)
    if plain and len(url) <= MAX_URL_LENGTH and len(plain.group(1)) <= 253:
        host, port, path = plain.groups()
        if port is None or 1 <= int(port) <= 65535:
            return url if path else url + "/"
    if len(url) > MAX_URL_LENGTH:
        raise BadMediaUrl(
            f"is {len(url):,} characters long; at most {MAX_URL_LENGTH:,} are accepted"
        )
    bad = _CONTROL.search(url)
    if bad:
        kind = "a lone surrogate" if "\ud800" <= bad.group() <= "\udfff" else "a control character"
        raise BadMediaUrl(f"holds {kind} {_shown(bad.group())} at position {bad.start()}")
    if url != url.strip():
        raise BadMediaUrl("begins or ends with whitespace")
    try:
        parts = urlsplit(url)
    except ValueError as exc:  # "Invalid IPv6 URL", or a bracketed host that is no address
        if "does not appear to be" in str(exc):
            raise BadMediaUrl("has an invalid IPv6 address in [ ]") from None
        raise BadMediaUrl("has unbalanced [ ] around its host") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not url[len(parts.scheme) :].startswith("://"):
        raise BadMediaUrl("must be an absolute http or https URL")
    host, port = _host_and_port(parts.netloc)
    path = quote(parts.path, safe=_PATH_SAFE) or "/"
    query = quote(parts.query, safe=_QUERY_SAFE)
    return (
        f"{scheme}://{host}{'' if port is None else f':{port}'}{path}{'?' + query if query else ''}"
    )


def _host_and_port(netloc: str) -> tuple[str, int | None]:
    if "@" in netloc:
        raise BadMediaUrl("must not carry a user name or password (user@host)")
    if netloc.startswith("["):
        end = netloc.find("]")
        if end < 0:
            raise BadMediaUrl("has unbalanced [ ] around its host")
        host, rest = netloc[1:end], netloc[end + 1 :]
        if rest and not rest.startswith(":"):
            raise BadMediaUrl(f"has {_shown(rest)} after its IPv6 address")
        port_text = rest[1:] if rest else None
        address, _, zone = host.partition("%")
        try:
            ipaddress.IPv6Address(address)
        except ValueError:
            raise BadMediaUrl(f"has an invalid IPv6 address {_shown(host)}") from None
        host = f"[{address.lower()}{'%' + zone if zone else ''}]"
    else:
        if "[" in netloc or "]" in netloc:
            raise BadMediaUrl("has unbalanced [ ] around its host")
        host, colon, port_text_ = netloc.rpartition(":")
        host, port_text = (host, port_text_) if colon else (netloc, None)
        host = _ascii_host(host)
    return host, _port(port_text)


def _port(text: str | None) -> int | None:
    if text is None or text == "":
        return None  # "host:" is the scheme's default port (RFC 3986)
    if not (text.isascii() and text.isdigit()) or len(text) > 5 or not 1 <= int(text) <= 65535:
        raise BadMediaUrl(f"has the port {_shown(text[:20])}; a port is a number 1-65535")
    return int(text)


def _ascii_host(host: str) -> str:
    if not host:
        raise BadMediaUrl("has no host")
    if any(ch.isspace() for ch in host):
        raise BadMediaUrl(f"has whitespace in its host {_shown(host)}")
    labels = (host[:-1] if host.endswith(".") else host).split(".")
    if "" in labels:
        raise BadMediaUrl(f"has an empty label in its host {_shown(host)}")
    out = []
    for label in labels:
        if not label.isascii():
            try:
                label = label.encode("idna").decode("ascii")
            except UnicodeError:
                raise BadMediaUrl(
                    f"has {_shown(label)} in its host, which is not a valid domain name label"
                ) from None
        if not _LABEL.fullmatch(label) or len(label) > 63:
            raise BadMediaUrl(
                f"has {_shown(label)} in its host; a label is 1-63 letters, digits, - or _"
            )
        out.append(label.lower())
    name = ".".join(out) + ("." if host.endswith(".") else "")
    if len(name) > 253:
        raise BadMediaUrl(f"has a host of {len(name)} characters; at most 253 are allowed")
    return name
