"""Media URL syntax: what is refused (with the reason) and the ASCII form of what is accepted."""

from __future__ import annotations

import pytest

from vedit.media.urls import BadMediaUrl, ascii_media_url


@pytest.mark.parametrize(
    ("url", "ascii_form"),
    [
        ("https://example.com/source.mp4", "https://example.com/source.mp4"),
        ("http://example.com", "http://example.com/"),
        ("HTTP://Example.COM/A.mp4", "http://example.com/A.mp4"),
        ("http://a.com:8080/x?y=1&z=%20", "http://a.com:8080/x?y=1&z=%20"),
        ("http://a.com:/x", "http://a.com/x"),  # an empty port is the default (RFC 3986)
        ("http://a.com./x", "http://a.com./x"),
        ("http://a.com/x#fragment", "http://a.com/x"),  # never sent over HTTP
        ("http://a.com?q", "http://a.com/?q"),
        (
            "http://bücher.example/ü x.mp4?q=ä",
            "http://xn--bcher-kva.example/%C3%BC%20x.mp4?q=%C3%A4",
        ),
        ("https://例え.jp/画像.png", "https://xn--r8jz45g.jp/%E7%94%BB%E5%83%8F.png"),
        ("http://[2001:db8::1]:8080/v", "http://[2001:db8::1]:8080/v"),
        ("http://[2001:DB8::1]/v", "http://[2001:db8::1]/v"),
        ("http://a.com/a%zzb", "http://a.com/a%zzb"),  # escapes kept as the client sent them
        ('http://a.com/"<>`{}|\\^', "http://a.com/%22%3C%3E%60%7B%7D%7C%5C%5E"),
    ],
)
def test_accepted_urls_and_their_ascii_form(url: str, ascii_form: str) -> None:
    assert ascii_media_url(url) == ascii_form


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://[::1/v", "unbalanced [ ]"),
        ("http://::1]/v", "unbalanced [ ]"),
        ("http://[::1]]/v", 'has "]" after its IPv6 address'),
        ("http://[zz::1]/v", "invalid IPv6 address"),
        ("http://a.com:0/v", 'port "0"'),
        ("http://a.com:65536/v", 'port "65536"'),
        ("http://a.com:99999999999999999999/v", "a port is a number 1-65535"),
        ("http://a.com:-1/v", 'port "-1"'),
        ("http://a.com:\u0668\u0660/v", "a port is a number 1-65535"),  # Arabic-Indic digits
        ("http://a.com:+80/v", 'port "+80"'),
        ("http://a b.com/v", "whitespace in its host"),
        ("http://a\u3000b.com/v", "whitespace in its host"),
        ("http://a..com/v", "empty label"),
        ("http://.a.com/v", "empty label"),
        ("http://a.com../v", "empty label"),
        ("http://user:pw@a.com/v", "user name or password"),
        ("http://a.com\\@evil.com/v", "user name or password"),
        ("http://%31%32%37.0.0.1/v", "label is 1-63 letters"),
        ("http://" + "a" * 64 + ".com/v", "label is 1-63 letters"),
        ("http://" + "a." * 130 + "com/v", "at most 253"),
        ("http:///v", "has no host"),
        ("http:/a.com/v", "absolute http or https"),
        ("//a.com/v", "absolute http or https"),
        ("ftp://a.com/v", "absolute http or https"),
        ("file:///etc/passwd", "absolute http or https"),
        ("javascript:alert(1)", "absolute http or https"),
        (" http://a.com/v", "whitespace"),
        ("http://a.com/v\n", "control character"),
        ("http://a.com/\x00", 'control character "\\u0000" at position 13'),
        ("http://a.com/\x85", "control character"),
        ("http://a.com/\ud800", 'lone surrogate "\\ud800"'),
        ("https://a.com/" + "x" * 2040, "2,054 characters long; at most 2,048"),
    ],
)
def test_refused_urls_say_why(url: str, reason: str) -> None:
    with pytest.raises(BadMediaUrl) as caught:
        ascii_media_url(url)
    assert reason in str(caught.value)
    str(caught.value).encode("utf-8")  # the reason can always be sent
