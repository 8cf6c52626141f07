"""The HTTP server's bookkeeping: client addresses, the connection book, the descriptor limit.

The limits themselves are tested against a live server in ``e2e/test_connection_limits.py``.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import textwrap

from vedit.api.http_server import ConnectionBook, ConnectionLimits, client_address
from vedit.api.wire import ANYFAST, error_headers

LIMITS = ConnectionLimits(
    max_connections=3,
    max_connections_per_client=2,
    max_header_bytes=16384,
    max_headers=100,
    header_timeout_s=20.0,
    body_timeout_s=60.0,
    keepalive_s=5.0,
)


def test_ipv4_clients_are_counted_per_address() -> None:
    assert client_address(("203.0.113.7", 50000)) == "203.0.113.7"


def test_ipv6_clients_are_counted_per_64_network() -> None:
    one = client_address(("2001:db8:1:2:aaaa::1", 50000))
    same_64 = client_address(("2001:db8:1:2:ffff:1:2:3", 50001))
    other_64 = client_address(("2001:db8:1:3::1", 50002))
    assert one == same_64 == "2001:db8:1:2::/64"
    assert other_64 != one


def test_ipv4_mapped_ipv6_clients_count_as_their_ipv4_address() -> None:
    assert client_address(("::ffff:203.0.113.7", 50000)) == "203.0.113.7"


def test_the_book_refuses_past_the_per_client_cap_then_past_the_process_cap() -> None:
    book = ConnectionBook(LIMITS)
    assert book.admit("a") is None and book.admit("a") is None
    refusal = book.admit("a")
    assert refusal is not None and ANYFAST.render(refusal)[0] == 503
    assert "per client" in refusal.message and error_headers(refusal) == {"Retry-After": "1"}
    assert book.admit("b") is None
    refusal = book.admit("c")
    assert refusal is not None and "the server holds 3" in refusal.message
    book.release("a")
    assert book.admit("c") is None
    assert book.open == 3 and book.open_by_client == {"a": 1, "b": 1, "c": 1}


def test_uploads_have_their_own_budget_within_the_connections() -> None:
    book = ConnectionBook(dataclasses.replace(LIMITS, max_upload_connections=2))
    assert book.admit("a") is None and book.admit("b") is None
    assert book.admit_upload("a") is None and book.admit_upload("b") is None
    refusal = book.admit_upload("a")
    assert refusal is not None and ANYFAST.render(refusal)[0] == 503
    assert "VEDIT_HTTP_MAX_UPLOAD_CONNECTIONS" in refusal.message
    assert error_headers(refusal) == {"Retry-After": "1"}
    book.release_upload()
    assert book.admit_upload("a") is None and book.uploads == 2 and book.open == 2


def fitted_in_a_process_with_descriptor_limit(soft: int, hard: int, cap: int) -> str:
    """``fitted_to_descriptor_limit`` run in a child process whose RLIMIT_NOFILE is (soft, hard)."""
    code = textwrap.dedent(
        f"""
        import resource
        from vedit.api.http_server import ConnectionLimits
        from vedit.config import Settings
        resource.setrlimit(resource.RLIMIT_NOFILE, ({soft}, {hard}))
        limits = ConnectionLimits.from_settings(Settings(http_max_connections={cap}))
        fitted = limits.fitted_to_descriptor_limit()
        print(fitted.max_connections, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_the_soft_descriptor_limit_is_raised_to_fit_the_connection_cap() -> None:
    # 1,000 connections: two descriptors each, plus 256 for the rest.
    assert fitted_in_a_process_with_descriptor_limit(1024, 4096, 1000) == "1000 2256"


def test_a_short_hard_descriptor_limit_lowers_the_connection_cap() -> None:
    assert fitted_in_a_process_with_descriptor_limit(512, 512, 1000) == "128 512"
