"""The SSRF guard's address judgement, as a pure function (no connection is ever opened)."""

from __future__ import annotations

import pytest

from vedit.media.fetch import classify_address


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "a loopback address"),
        ("127.255.0.9", "a loopback address"),
        ("::1", "a loopback address"),
        ("10.0.0.5", "a private address"),
        ("172.16.3.4", "a private address"),
        ("192.168.1.1", "a private address"),
        ("fd12:3456::1", "a private address"),
        ("169.254.169.254", "a link-local address (cloud metadata service)"),
        ("fd00:ec2::254", "a link-local address (cloud metadata service)"),
        ("169.254.10.1", "a link-local address"),
        ("fe80::1", "a link-local address"),
        ("224.0.0.1", "a multicast address"),
        ("ff02::1", "a multicast address"),
        ("0.0.0.0", "an unspecified address"),
        ("::", "an unspecified address"),
        ("240.0.0.1", "a reserved address"),
        ("100.64.0.1", "not a public address"),  # carrier-grade NAT
        ("::ffff:127.0.0.1", "a loopback address (IPv4 127.0.0.1 inside IPv6)"),
        ("::ffff:10.1.2.3", "a private address (IPv4 10.1.2.3 inside IPv6)"),
        (
            "::ffff:169.254.169.254",
            "a link-local address (cloud metadata service) (IPv4 169.254.169.254 inside IPv6)",
        ),
        (
            "64:ff9b::a9fe:a9fe",
            "a link-local address (cloud metadata service) (IPv4 169.254.169.254 inside IPv6)",
        ),
        ("2002:7f00:1::1", "a loopback address (IPv4 127.0.0.1 inside IPv6)"),  # 6to4 of 127.0.0.1
    ],
)
def test_non_public_addresses_are_refused_with_a_reason(address, reason) -> None:
    assert classify_address(address) == reason


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_addresses_pass(address) -> None:
    assert classify_address(address) is None
