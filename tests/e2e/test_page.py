"""The page at ``/`` in a real browser: Debian's Chromium, driven by Playwright, against a live
server on loopback, with real uploads and real edits.

Chromium comes from the system (``apt-get install chromium``; ``.ci/apt.sh`` in CI), never
from ``playwright install``. Without it these tests skip, except under ``CI=true``, where
they fail. Screenshots go to ``tests/artifacts/`` (or ``$VEDIT_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from PIL import Image

from conftest import MediaServer, VeditServer
from mediagen import make_image, make_person_video, make_video

CHROMIUM = os.environ.get("VEDIT_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("VEDIT_TEST_ARTIFACTS", Path(__file__).parents[1] / "artifacts"))
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
PROMPT = "replace the background with the scene in the picture"
# page.evaluate() has no timeout of its own: a promise that never settles would hang the test.
WITHIN = """((promise, what) => Promise.race([promise, new Promise((_, no) =>
    setTimeout(() => no(new Error(what + ' did not settle in 15 s')), 15000))]))"""


def _no_browser(reason: str) -> None:
    """Fail under CI (the browser is part of the test setup there); skip elsewhere."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: .ci/apt.sh installs it)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium from the system, through Playwright's Python driver."""
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        _no_browser(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _no_browser("the playwright package is not installed (pip install -e '.[test]')")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield b
        b.close()


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The files a user picks: the test scene (a person walking across a room) and a photo."""
    d = tmp_path_factory.mktemp("picked")
    return {
        "video": make_person_video(d / "walk.mp4", width=640, height=360, seconds=4),
        "image": make_image(d / "rocket.jpg", kind="rocket", fmt="JPEG"),
    }


class Browsing:
    """One browser page on the server, with every request and console complaint it made."""

    def __init__(self, browser: Any, server: VeditServer, width: int = 1280) -> None:
        self.context = browser.new_context(viewport={"width": width, "height": 900})
        self.page = self.context.new_page()
        self.requests: list[str] = []
        self.problems: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("console", self._console)
        # Intercept file choosers from the start: turned on only when awaited, interception
        # can come after the keypress that opens one (then no chooser event ever comes).
        self.page.on("filechooser", lambda _chooser: None)
        self.page.set_default_timeout(20_000)
        self.page.goto(f"{server.base}/")

    def _console(self, message: Any) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            self.problems.append(message.text)

    def off_loopback(self) -> list[str]:
        """Requests to any address but this machine's (blob: previews are in-page)."""
        return [
            u
            for u in self.requests
            if not u.startswith(("blob:", "data:")) and urlsplit(u).hostname not in LOOPBACK
        ]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def browsing(browser: Any, server: VeditServer) -> Iterator[Browsing]:
    b = Browsing(browser, server)
    yield b
    b.close()
    assert not b.off_loopback(), f"the page reached beyond loopback: {b.off_loopback()}"
    assert not b.problems, b.problems


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def play(page: Any, selector: str) -> dict[str, Any]:
    """Start a <video> (muted: no user gesture here) and wait until its clock has moved."""
    page.evaluate(
        "(sel) => within(document.querySelector(sel).play(), 'play()')".replace("within", WITHIN),
        selector,
    )
    page.wait_for_function("(sel) => document.querySelector(sel).currentTime > 0.2", arg=selector)
    return page.evaluate(
        """(sel) => { const v = document.querySelector(sel);
            return {t: v.currentTime, ready: v.readyState, w: v.videoWidth, h: v.videoHeight,
                    paused: v.paused, error: v.error && v.error.message, src: v.currentSrc}; }""",
        selector,
    )


def show_frame(page: Any, seconds: float) -> None:
    """Every player that has a video paused on the frame at ``seconds`` (for a screenshot)."""
    page.evaluate(
        """(t) => within(Promise.all([...document.querySelectorAll('li.task video[src]')].map(
            async v => {
              v.pause();
              if (v.readyState < 1) await new Promise(r => v.addEventListener(
                  'loadedmetadata', r, {once: true}));
              await new Promise(r => { v.addEventListener('seeked', r, {once: true});
                                       v.currentTime = t; });
            })), 'seeking')""".replace("within", WITHIN),
        seconds,
    )


# --- served as it is -------------------------------------------------------------------


def test_page_and_assets_are_served_with_a_self_only_csp(server: VeditServer) -> None:
    r = server.client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "connect-src 'self'" in csp and "media-src 'self' blob: http: https:" in csp
    assert '<script src="/page/page.js"' in r.text and "https://" not in r.text.split("<body")[0]
    head = server.client.head("/")
    assert head.status_code == 200 and head.content == b""
    for name, kind in [("page.js", "text/javascript"), ("page.css", "text/css")]:
        a = server.client.get(f"/page/{name}")
        assert a.status_code == 200 and a.headers["content-type"].startswith(kind)
        assert server.client.head(f"/page/{name}").status_code == 200
    missing = server.client.get("/page/..%2Fpage.py")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert "/" not in server.client.get("/openapi.json").json()["paths"]


# --- the whole flow ----------------------------------------------------------------------


def test_edit_from_picked_files_then_cancel_a_second(
    browsing: Browsing, server: VeditServer, media: MediaServer, clips: dict[str, Path]
) -> None:
    page = browsing.page
    page.get_by_label("API key").fill(server.key)
    page.get_by_label("Remember the key in this browser").check()

    # 1. Pick a video and an image; both are uploaded on submit, with a progress bar each.
    page.get_by_label("Video file: drop it here or choose one").set_input_files(clips["video"])
    page.get_by_label("Image file: drop it here or choose one").set_input_files(clips["image"])
    assert "walk.mp4" in page.locator("#video-name").inner_text()
    page.get_by_label("Prompt").fill(PROMPT)
    page.get_by_label("Resolution").select_option("720P")
    assert page.get_by_label("Watermark").is_checked()
    page.get_by_role("button", name="Edit the video").click()
    page.wait_for_selector("li.task")
    assert page.locator("#video-upload-text").inner_text() == "Uploaded walk.mp4"
    assert page.locator("#image-progress").evaluate("p => p.value") == 100

    # 2. Progress shows while the worker edits, then SUCCESS with both players.
    task = page.locator("li.task").first
    task_id = task.get_attribute("data-id")
    assert task_id and task_id.startswith("asyntask_")
    page.wait_for_function(
        """() => { const t = document.querySelector('li.task');
                   const p = t.querySelector('.task-progress');
                   return p.value > 0 && p.value < 100 && !p.hidden
                       && t.querySelector('.task-status').textContent === 'Editing'
                       && t.querySelector('.task-percent').textContent === p.value + ' %'; }""",
        timeout=60_000,
    )
    page.wait_for_selector("li.task[data-status=SUCCESS]", timeout=90_000)
    assert task.locator(".task-status").inner_text() == "Done"
    data = server.query(task_id).json()["data"]
    assert data["status"] == "SUCCESS"
    source = page.locator("li.task video.source").get_attribute("src")
    assert source and "/v1/uploads/" in source
    assert page.locator("li.task video.result").get_attribute("src") == data["result_url"]
    plan = task.locator(".plan").inner_text()
    assert "background was replaced" in plan and "Why: background word" in plan
    assert task.locator(".plan-notice").is_hidden()  # made as asked: no notice

    # 3. Both players really play: the decoder runs and the clock moves.
    for selector in ("li.task video.source", "li.task video.result"):
        state = play(page, selector)
        assert state["error"] is None and state["ready"] >= 2, state
        assert state["w"] > 0 and state["t"] > 0, state
    page.evaluate("document.querySelectorAll('video').forEach(v => v.pause())")

    # 4. A second task, fetched slowly from a URL, is cancelled from the page (while its
    #    download drips: 6 s, so its worker is free again before the server stops).
    page.get_by_label("…or the video's URL").fill(media.url("/slow?file=wide.mp4&seconds=6"))
    page.get_by_label("…or the image's URL").fill(media.url("astronaut.png"))
    assert page.locator("#video-picked").is_hidden()  # the URL replaces the picked file
    page.get_by_label("Prompt").fill("make it look like the reference photo")
    page.get_by_role("button", name="Edit the video").click()
    page.wait_for_function("() => document.querySelectorAll('li.task').length === 2")
    second = page.locator("li.task").first
    second.get_by_role("button", name="Cancel").click()
    page.wait_for_selector("li.task[data-inner=CANCELED]", timeout=20_000)
    assert second.locator(".badge").inner_text() == "CANCELED"
    assert second.locator(".task-status").inner_text() == "Cancelled"
    assert second.get_by_role("button", name="Cancel").is_hidden()
    second_id = second.get_attribute("data-id")
    assert second_id is not None
    assert server.query(second_id).json()["data"]["data"]["output"]["task_status"] == "CANCELED"

    # 5. The list and the key outlive a reload; polling stops at the final statuses.
    page.reload()
    page.wait_for_selector("li.task[data-status=SUCCESS]")
    assert page.locator("li.task").count() == 2
    assert page.get_by_label("API key").input_value() == server.key
    before = len(browsing.requests)
    page.wait_for_timeout(2000)
    polls = [u for u in browsing.requests[before:] if "/v1/video/generations/" in u]
    assert polls == [], polls
    show_frame(page, 1.5)
    screenshot(page, "page.png")

    # 6. At phone width nothing scrolls sideways, players included.
    page.set_viewport_size({"width": 375, "height": 800})
    page.wait_for_timeout(200)
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    screenshot(page, "page-phone.png")

    # 7. Remove from list: gone from the page and from this browser's storage.
    second.get_by_role("button", name="Remove from list").click()
    assert page.locator("li.task").count() == 1
    kept = page.evaluate("JSON.parse(localStorage.getItem('vedit.tasks')).map(t => t.id)")
    assert kept == [task_id]


# --- errors, keys, keyboard ----------------------------------------------------------------


def test_a_bad_key_and_a_dead_server_are_said_in_plain_words(
    browsing: Browsing, media: MediaServer
) -> None:
    page = browsing.page
    page.get_by_label("API key").fill("vk-not-a-key-of-this-server-000000")
    page.get_by_label("…or the video's URL").fill(media.url("wide.mp4"))
    page.get_by_label("…or the image's URL").fill(media.url("astronaut.png"))
    page.get_by_label("Prompt").fill(PROMPT)
    page.get_by_role("button", name="Edit the video").click()
    alert = page.get_by_role("alert")
    alert.wait_for()
    text = alert.inner_text()
    assert "the API key is unknown or revoked" in text and "Check the key" in text
    assert page.locator("li.task").count() == 0

    # The server stops answering (every request of this page is dropped on the way).
    page.route("**/v1/**", lambda route: route.abort("connectionrefused"))
    page.get_by_role("button", name="Edit the video").click()
    page.wait_for_function(
        "() => document.getElementById('form-error').textContent.includes('did not answer')"
    )
    assert "Check that vedit serve is still running" in alert.inner_text()


def test_a_file_too_large_or_not_a_video_is_refused_in_plain_words(
    browser: Any, make_server: Any, clips: dict[str, Path], tmp_path: Path
) -> None:
    small = make_server({"VEDIT_VIDEO_MAX_BYTES": "100000"}, workers=0)
    assert clips["video"].stat().st_size > 100_000
    b = Browsing(browser, small)
    try:
        page = b.page
        page.get_by_label("API key").fill(small.key)
        page.locator("#video-file").set_input_files(clips["video"])
        page.locator("#image-file").set_input_files(clips["image"])
        page.get_by_label("Prompt").fill(PROMPT)
        page.get_by_role("button", name="Edit the video").click()
        alert = page.get_by_role("alert")
        alert.wait_for()
        text = alert.inner_text()
        assert text.startswith("Could not upload the video:") and "100,000" in text, text
        assert "The file is too large for this server: pick a smaller one" in text
        assert page.locator("#video-upload-text").inner_text() == "Upload failed"

        # Not a video whatever its name: said when it is picked, from its first bytes, and
        # never uploaded.
        notes = tmp_path / "notes.mp4"
        notes.write_text("not a video at all\n" * 100)
        uploads = [u for u in b.requests if "/v1/uploads" in u]
        page.locator("#video-file").set_input_files(notes)
        page.wait_for_function(
            "() => document.getElementById('form-error').textContent.includes('notes.mp4')"
        )
        text = alert.inner_text()
        assert text.startswith(
            "notes.mp4 is not a video this server can take: it does not start like MP4 or MOV."
        ), text
        assert "vedit convert notes.mp4 notes-converted.mp4" in text
        assert page.locator("#video-picked").is_hidden()
        page.get_by_role("button", name="Edit the video").click()  # it says so again
        page.wait_for_function("() => !document.getElementById('form-error').hidden")
        assert alert.inner_text().startswith("notes.mp4 is not a video this server can take")
        assert [u for u in b.requests if "/v1/uploads" in u] == uploads
        assert page.locator("li.task").count() == 0
    finally:
        b.close()
    assert not b.off_loopback() and not b.problems


def test_forget_removes_the_remembered_key(browsing: Browsing, server: VeditServer) -> None:
    page = browsing.page
    page.get_by_label("API key").fill(server.key)
    page.get_by_label("Remember the key in this browser").check()
    assert page.evaluate("JSON.parse(localStorage.getItem('vedit.key'))") == server.key
    page.get_by_role("button", name="Forget").click()
    assert page.evaluate("localStorage.getItem('vedit.key')") is None
    assert page.get_by_label("API key").input_value() == ""
    page.reload()
    assert page.get_by_label("API key").input_value() == ""


def test_a_dropped_file_is_picked_and_one_of_the_wrong_kind_refused(
    browsing: Browsing, clips: dict[str, Path]
) -> None:
    page = browsing.page

    def drop(name: str, kind: str, data: bytes) -> None:
        transfer = page.evaluate_handle(
            """([name, kind, bytes]) => { const dt = new DataTransfer();
                dt.items.add(new File([new Uint8Array(bytes)], name, {type: kind}));
                return dt; }""",
            [name, kind, list(data)],
        )
        page.dispatch_event("#video-drop", "drop", {"dataTransfer": transfer})

    drop("notes.txt", "text/plain", b"a shopping list")
    alert = page.get_by_role("alert")
    assert alert.inner_text().startswith("notes.txt is not a video file.")
    assert page.locator("#video-picked").is_hidden()

    drop("walk.mp4", "video/mp4", clips["video"].read_bytes()[:50_000])
    assert alert.is_hidden()
    assert page.locator("#video-name").inner_text() == "walk.mp4 (50 kB)"


def test_every_control_is_labelled_and_reached_with_tab(
    browsing: Browsing, clips: dict[str, Path]
) -> None:
    page = browsing.page
    seen: list[dict[str, str]] = []
    page.locator("body").focus()
    for _ in range(20):
        page.keyboard.press("Tab")
        seen.append(
            page.evaluate(
                """() => { const e = document.activeElement;
                    const label = e.labels && e.labels.length ? e.labels[0].textContent : '';
                    return {id: e.id, tag: e.tagName, name: (label || e.textContent || '').trim()}; }"""
            )
        )
        if seen[-1]["id"] == "submit":
            break
    order = [s["id"] for s in seen if s["id"]]
    assert order == [
        "key", "forget", "remember", "video-file", "video-url", "image-file", "image-url",
        "prompt", "resolution", "audio", "seed", "watermark", "submit",
    ]  # fmt: skip
    assert all(s["name"] for s in seen), seen

    # The drop zone opens the file chooser from the keyboard.
    page.focus("#video-file")
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Enter")
    chooser.value.set_files(clips["video"])
    assert "walk.mp4" in page.locator("#video-name").inner_text()
    page.get_by_role("button", name="Clear").first.press("Enter")
    assert page.locator("#video-picked").is_hidden()
    assert page.evaluate("document.activeElement.id") == "video-file"


# --- a format the API refuses, said when it is picked --------------------------------------


def test_a_picked_file_in_a_refused_format_says_what_is_taken_and_how_to_convert(
    browsing: Browsing, clips: dict[str, Path], tmp_path: Path
) -> None:
    page = browsing.page
    avi = make_video(tmp_path / "holiday clip.avi", container="avi", codec="mpeg4", seconds=4)
    gif = tmp_path / "look.gif"
    Image.open(clips["image"]).save(gif)
    alert = page.get_by_role("alert")

    def said(selector: str, path: Path) -> str:
        page.locator(selector).set_input_files(path)
        page.wait_for_function(
            "(name) => document.getElementById('form-error').textContent.includes(name)",
            arg=path.name,
        )
        return alert.inner_text()

    text = said("#video-file", avi)
    assert text.startswith(
        "holiday clip.avi is an AVI video: this server takes a video as MP4 or MOV (H.264 "
        "recommended)."
    ), text
    assert "Convert it into an H.264 MP4 on your computer with vedit (no ffmpeg needed): " in text
    assert "vedit convert 'holiday clip.avi' 'holiday clip.mp4'" in text
    assert "vedit submit holiday clip.avi … --convert converts and submits it in one go" in text
    assert page.locator("#video-picked").is_hidden()

    text = said("#image-file", gif)
    assert text.startswith("look.gif is a GIF image: this server takes an image as JPEG, PNG,")
    assert "vedit convert look.gif look.png" in text
    assert page.locator("#image-picked").is_hidden()

    text = said("#video-file", clips["image"])
    assert text.startswith("rocket.jpg is an image, not a video."), text

    # Dropped, it is the same (the type the browser gives it, video/x-msvideo, says nothing).
    transfer = page.evaluate_handle(
        """([name, bytes]) => { const dt = new DataTransfer();
            dt.items.add(new File([new Uint8Array(bytes)], name, {type: 'video/x-msvideo'}));
            return dt; }""",
        ["dropped.avi", list(avi.read_bytes()[:4096])],
    )
    page.dispatch_event("#video-drop", "drop", {"dataTransfer": transfer})
    page.wait_for_function(
        "() => document.getElementById('form-error').textContent.includes('dropped.avi')"
    )
    assert alert.inner_text().startswith("dropped.avi is an AVI video")
    assert page.locator("#video-picked").is_hidden()
    assert not [u for u in browsing.requests if "/v1/uploads" in u]  # nothing was sent


# --- the words follow the task's real state --------------------------------------------------

# Every change of the first card's words and progress, as the page showed them.
RECORD = """() => {
  window.seen = [];
  const note = () => {
    const t = document.querySelector('li.task');
    if (!t) return;
    const shown = [t.dataset.status, t.querySelector('.task-status').textContent,
                   t.querySelector('.task-percent').textContent,
                   t.querySelector('.plan').hidden ? '' : t.querySelector('.plan').innerText];
    const last = window.seen[window.seen.length - 1];
    if (!last || last.join('|') !== shown.join('|')) window.seen.push(shown);
  };
  new MutationObserver(note).observe(document.getElementById('tasks'),
      {subtree: true, childList: true, characterData: true, attributes: true});
  note();
}"""


def _submit_urls(page: Any, key: str, video: str, image: str, prompt: str) -> None:
    page.get_by_label("API key").fill(key)
    page.get_by_label("…or the video's URL").fill(video)
    page.get_by_label("…or the image's URL").fill(image)
    page.get_by_label("Prompt").fill(prompt)
    page.get_by_label("Resolution").select_option("720P")
    page.get_by_role("button", name="Edit the video").click()
    page.wait_for_selector("li.task")
    page.evaluate(RECORD)


def test_an_edit_not_made_as_asked_shows_a_notice(
    browsing: Browsing, server: VeditServer, media: MediaServer
) -> None:
    """Moving shapes, no person: the background edit falls back to the look. The task is a
    SUCCESS, and the card says plainly, above the players, that the background was not
    replaced and why — never a silent success."""
    page = browsing.page
    _submit_urls(page, server.key, media.url("silent.mp4"), media.url("coffee.jpg"), PROMPT)
    task = page.locator("li.task").first
    page.wait_for_selector("li.task[data-status=SUCCESS]", timeout=90_000)
    notice = task.locator(".plan-notice")
    assert notice.is_visible() and notice.get_attribute("role") == "status"
    assert notice.inner_text() == (
        "The background was not replaced: the pose model and the person detector found no "
        "person in the 8 frames sampled from the clip, so the reference's look is applied."
    )
    plan = task.locator(".plan").inner_text()
    assert "The colours and light of the video were matched to the reference image" in plan
    assert "Not applied" not in plan  # the look was applied; the background was not
    assert "The prompt asked for a new background; this was done instead." in plan
    screenshot(page, "page-not-made-as-asked.png")


def test_a_late_answer_never_takes_a_cancelled_task_back(
    browsing: Browsing, server: VeditServer, media: MediaServer
) -> None:
    """A query answered slowly, after the cancel's answer came: the page keeps the newer."""
    page = browsing.page
    held: list[tuple[Any, Any]] = []
    hold = {"on": False}

    def answer(route: Any) -> None:
        if hold["on"] and route.request.method == "GET" and not held:
            held.append((route, route.fetch()))  # the server's answer now, delivered later
        else:
            route.continue_()

    page.route("**/v1/video/generations/asyntask_*", answer)
    _submit_urls(page, server.key, media.url("/slow?file=wide.mp4&seconds=6"),
                 media.url("astronaut.png"), PROMPT)  # fmt: skip
    task = page.locator("li.task").first
    page.wait_for_selector("li.task[data-status=IN_PROGRESS]", timeout=20_000)
    hold["on"] = True
    for _ in range(150):  # the next query goes out within the poll's backoff
        if held:
            break
        page.wait_for_timeout(100)
    assert held, "no query was held"
    task.get_by_role("button", name="Cancel").click()
    page.wait_for_selector("li.task[data-inner=CANCELED]", timeout=20_000)
    route, stale = held[0]
    assert stale.json()["data"]["status"] == "IN_PROGRESS"
    route.fulfill(response=stale)  # the answer from before the cancel arrives now
    page.wait_for_timeout(2500)
    seen = page.evaluate("window.seen")
    after = seen[[s[1] for s in seen].index("Cancelled") :]
    assert {s[1] for s in after} == {"Cancelled"}, seen
    assert task.locator(".badge").inner_text() == "CANCELED"
    assert task.get_by_role("button", name="Cancel").is_hidden()


def test_the_words_follow_a_task_that_starts_over_and_the_plan_is_told_in_time(
    browser: Any, make_server: Any, media: MediaServer, media_dir: Path
) -> None:
    """One worker; SIGTERM to it mid-edit hands the task back (QUEUED, 0 %) and the worker
    started in its place edits it from the start. The page says so whenever its progress goes
    back, and tells the plan in the future tense while it runs, in the past once done."""
    srv = make_server(workers=1)
    make_person_video(media_dir / "page-walk.mp4", width=640, height=360, seconds=8)
    b = Browsing(browser, srv)
    try:
        page = b.page
        _submit_urls(page, srv.key, media.url("page-walk.mp4"), media.url("astronaut.png"), PROMPT)
        page.wait_for_function(
            """() => { const t = document.querySelector('li.task');
                       return t.dataset.status === 'IN_PROGRESS'
                           && !t.querySelector('.plan').hidden; }""",
            timeout=60_000,
        )
        plan = page.locator("li.task .plan").inner_text()
        assert plan.startswith("What will be done"), plan
        assert "The background will be replaced by the reference image; the person will be " in plan
        assert "was replaced" not in plan
        worker = srv.db("select worker_id from tasks")[0][0]
        os.kill(int(worker.rsplit(":", 1)[1]), signal.SIGTERM)
        page.wait_for_selector("li.task[data-status=SUCCESS]", timeout=120_000)
        plan = page.locator("li.task .plan").inner_text()
        assert plan.startswith("What was done") and "The background was replaced" in plan
        seen = page.evaluate("window.seen")
        restarted = [s for s in seen if "again" in s[1] or "started over" in s[1]]
        assert restarted, seen
        percents = [(s[1], int(s[2].rstrip(" %") or 0)) for s in seen if s[0] == "IN_PROGRESS"]
        for (_, before), (words, now) in zip(percents, percents[1:], strict=False):
            assert now >= before or "started over" in words, seen  # back only when said
    finally:
        b.close()
    assert not b.problems, b.problems
