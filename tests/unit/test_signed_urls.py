"""Result URLs: HMAC-signed with an expiry; any change or an old link is refused."""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from vedit.config import Settings
from vedit.errors import SignatureInvalid
from vedit.storage import StorageOptions
from vedit.storage.local import LocalStorage


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    st = LocalStorage(StorageOptions.of(Settings(data_dir=tmp_path, public_base_url="http://h:1")))
    st.result_path("asyntask_a").write_bytes(b"x")
    st.result_path("asyntask_b").write_bytes(b"y")
    return st


def parts(url: str) -> tuple[str, str, str]:
    u = urlsplit(url)
    q = {k: v[0] for k, v in parse_qs(u.query).items()}
    return u.path.rsplit("/", 1)[1], q["expires"], q["signature"]


def test_a_fresh_url_opens_its_file(storage) -> None:
    url = storage.signed_url("asyntask_a", int(time.time()) + 60)
    assert url.startswith("http://h:1/v1/files/asyntask_a.mp4?expires=")
    assert storage.local_path(storage.verify(*parts(url))).read_bytes() == b"x"


def test_tampered_urls_are_refused(storage) -> None:
    name, expires, sig = parts(storage.signed_url("asyntask_a", int(time.time()) + 60))
    for bad in [
        ("asyntask_b.mp4", expires, sig),
        (name, str(int(expires) + 1), sig),
        (name, expires, sig[:-1] + ("0" if sig[-1] != "0" else "1")),
        (name, "", sig),
        (name, expires, ""),
    ]:
        with pytest.raises(SignatureInvalid):
            storage.verify(*bad)


def test_expired_urls_are_refused(storage) -> None:
    url = storage.signed_url("asyntask_a", int(time.time()) + 60)
    with pytest.raises(SignatureInvalid, match="expired"):
        storage.verify(*parts(url), now=time.time() + 61)


def test_the_secret_is_kept_across_restarts(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path, public_base_url="http://h:1")
    a = LocalStorage(StorageOptions.of(s)).signed_url("asyntask_a", 100)
    assert LocalStorage(StorageOptions.of(s)).signed_url("asyntask_a", 100) == a
    assert (tmp_path / "signing.key").stat().st_mode & 0o777 == 0o600
