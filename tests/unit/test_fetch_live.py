"""Safe download against a real loopback HTTP server: allow-list, redirects, caps, timeouts.

Only loopback addresses are ever contacted: refusals are shown with loopback
addresses that are not on the allow-list.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from vedit.errors import MediaDownloadFailed, MediaRefused, MediaTooLarge
from vedit.media.fetch import FetchLimits, fetch_media

LABEL = "media[0] (video)"


def fetch(url: str, dest: Path, allow: list[str], **limits) -> int:
    lim = FetchLimits(max_bytes=limits.pop("max_bytes", 100_000_000), **limits)
    return fetch_media(url, dest, label=LABEL, limits=lim, allow=allow)


def test_an_allowed_host_is_fetched_whole(media, tmp_path) -> None:
    n = fetch(media.url("wide.mp4"), tmp_path / "v", [media.hostport])
    assert n == (Path(media.httpd.root) / "wide.mp4").stat().st_size
    assert (tmp_path / "v").read_bytes() == (Path(media.httpd.root) / "wide.mp4").read_bytes()


def test_loopback_not_on_the_allow_list_is_refused(media, tmp_path) -> None:
    with pytest.raises(
        MediaRefused,
        match=r"^media\[0\] \(video\): refused: 127\.0\.0\.1 is a loopback address \(only public "
        r"addresses are fetched; 127\.0\.0\.1:\d+ is not on VEDIT_MEDIA_ALLOW / vedit serve "
        r"--media-allow\)$",
    ):
        fetch(media.url("wide.mp4"), tmp_path / "v", [])


def test_a_host_name_resolving_to_loopback_is_refused(media, tmp_path) -> None:
    url = f"http://localhost:{media.port}/wide.mp4"
    with pytest.raises(
        MediaRefused,
        match=r"refused: localhost resolves to (127\.0\.0\.1|::1), is a loopback address",
    ):
        fetch(url, tmp_path / "v", [media.hostport])  # allowed by address, not by this name


def test_other_ports_of_an_allowed_host_are_refused(media, tmp_path) -> None:
    with pytest.raises(MediaRefused, match="loopback"):
        fetch(f"http://127.0.0.1:{media.port + 1}/x", tmp_path / "v", [media.hostport])


def test_a_redirect_to_loopback_is_refused(media, tmp_path) -> None:
    target = f"http://127.0.0.2:{media.port}/wide.mp4"
    with pytest.raises(MediaRefused, match=r"127\.0\.0\.2 is a loopback address"):
        fetch(media.url(f"redirect?to={target}"), tmp_path / "v", [media.hostport])


def test_a_redirect_to_another_scheme_is_refused(media, tmp_path) -> None:
    with pytest.raises(MediaRefused, match="must be an absolute http or https URL: file:"):
        fetch(media.url("redirect?to=file:///etc/passwd"), tmp_path / "v", [media.hostport])


def test_redirects_are_followed_up_to_three(media, tmp_path) -> None:
    assert fetch(media.url("hops/2"), tmp_path / "v", [media.hostport]) > 0  # 3 redirects
    with pytest.raises(MediaDownloadFailed, match="more than 3 redirects"):
        fetch(media.url("hops/3"), tmp_path / "v", [media.hostport])


def test_the_size_cap_counts_bytes_read_when_no_length_is_declared(media, tmp_path) -> None:
    with pytest.raises(MediaTooLarge, match="over the 1,000,000-byte limit"):
        fetch(media.url("endless"), tmp_path / "v", [media.hostport], max_bytes=1_000_000)


def test_a_file_over_the_cap_is_refused(media, tmp_path) -> None:
    with pytest.raises(MediaTooLarge, match=r"declares \d[\d,]* bytes; the limit is 100,000"):
        fetch(media.url("wide.mp4"), tmp_path / "v", [media.hostport], max_bytes=100_000)


def test_http_errors_fail_the_download(media, tmp_path) -> None:
    with pytest.raises(MediaDownloadFailed, match=rf"HTTP 404 from {media.hostport}/missing\.mp4$"):
        fetch(media.url("missing.mp4"), tmp_path / "v", [media.hostport])


def test_a_stalled_server_times_out(media, tmp_path) -> None:
    with pytest.raises(MediaDownloadFailed, match=rf"{media.hostport} sent nothing for 0\.5 s"):
        fetch(media.url("stall?seconds=3"), tmp_path / "v", [media.hostport], read_timeout_s=0.5)


def test_a_slow_drip_hits_the_total_timeout(media, tmp_path) -> None:
    with pytest.raises(MediaDownloadFailed, match="not finished within 1 s"):
        fetch(media.url("slow?seconds=4"), tmp_path / "v", [media.hostport], total_timeout_s=1)


def test_non_http_urls_are_refused(tmp_path) -> None:
    for url in ("ftp://127.0.0.1/x", "file:///etc/passwd", "http:///nohost"):
        with pytest.raises(MediaRefused):
            fetch(url, tmp_path / "v", [])


def test_an_iri_path_is_fetched_as_the_uri_it_stands_for(media, tmp_path) -> None:
    name = "clip ü 视频.mp4"
    root = Path(media.httpd.root)
    (root / name).write_bytes((root / "wide.mp4").read_bytes())
    iri = f"http://127.0.0.1:{media.port}/{name}?q=ä"
    n = fetch(iri, tmp_path / "v", [media.hostport])
    assert n == (root / name).stat().st_size
    assert "/clip%20%C3%BC%20%E8%A7%86%E9%A2%91.mp4?q=%C3%A4" in media.httpd.paths_seen


def test_a_redirect_to_an_iri_is_followed(media, tmp_path) -> None:
    name = "redirected é.mp4"
    root = Path(media.httpd.root)
    (root / name).write_bytes((root / "wide.mp4").read_bytes())
    n = fetch(media.url(f"redirect?to=/{name}"), tmp_path / "v", [media.hostport])
    assert n == (root / name).stat().st_size
