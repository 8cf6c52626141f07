"""Every shell and Python snippet of README.md and of the manual in docs/ runs as written,
against a live ``vedit serve`` on loopback: its success path, and its failure paths (a file that is not there, a wrong key,
a server that does not answer) end in a clear message, never a traceback.

Only what a reader would change is substituted: ``127.0.0.1:8000`` becomes the test
server's address, the placeholders (``<the key printed at start>``, ``<task_id>``,
``/home/me/``) the real values; ``VEDIT_BASE_URL`` and ``VEDIT_API_KEY``, which the
snippets read, are set as a reader's shell would have them. Each snippet runs in a folder
that holds what it names (``clip.mp4``, ``look.jpg``, ``.venv`` — this virtualenv). A
snippet that installs, deploys or needs another service says so in :data:`NOT_RUN`; a new
snippet must be run here or listed there.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from conftest import VeditServer, free_port
from mediagen import make_video

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent


@dataclass(frozen=True)
class Snippet:
    lang: str
    line: int  # of the opening fence, 1-based
    code: str
    page: str = "README.md"  # relative to the repository

    def __str__(self) -> str:
        return f"{self.page}:{self.line} ({self.lang}): {self.code.splitlines()[0]!r}"


def pages() -> list[Path]:
    """README.md, the front door, and the manual's pages."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def snippets() -> list[Snippet]:
    """The ```bash and ```python blocks of every page (those nested in a list included)."""
    found = []
    for page in pages():
        lines, name = page.read_text().splitlines(), page.relative_to(ROOT).as_posix()
        i = 0
        while i < len(lines):
            opening = re.fullmatch(r"( *)```(bash|python)", lines[i])
            if opening:
                indent, lang, start = len(opening[1]), opening[2], i + 1
                i += 1
                while not lines[i].strip().startswith("```"):
                    i += 1
                code = "\n".join(line[indent:] for line in lines[start:i])
                found.append(Snippet(lang, start, code + "\n", name))
            i += 1
    return found


def snippet(starting: str) -> Snippet:
    """The one snippet, on whichever page, whose code starts with ``starting``."""
    matches = [s for s in snippets() if s.code.startswith(starting)]
    assert len(matches) == 1, f"{len(matches)} snippets start with {starting!r}: {matches}"
    return matches[0]


# Snippets not run here, and why.
NOT_RUN = {
    "# 1. Install and start the service": "installs vedit and serves on port 8000: CI's .ci/run "
    "runs it as written in a fresh copy",
    "# 2. Install and run the whole test suite": "installs vedit and runs every test",
    ".venv/bin/pip install -e '.[vace]'": "downloads Wan2.1 weights; engine vace wants a GPU "
    "(bench/vace_gpu.sh)",
    "# VEDIT_UPSTREAM_API_KEY is your DashScope key": "needs a DashScope account",
    "pip install -e '.[scale]'    # psycopg 3": "needs PostgreSQL and Redis hosts (their tests: "
    "test_postgresql.py, test_shared_rate_limit.py)",
    "AWS_ACCESS_KEY_ID=…": "needs an S3 bucket (test_s3_storage.py runs SeaweedFS)",
    "pip install -e '.[scale]'    # adds celery": "needs a broker and worker hosts "
    "(test_celery_dispatch.py)",
    ".venv/bin/hf download Wan-AI/": "downloads Wan2.1 weights (GBs) from the Hugging Face Hub",
    "VEDIT_HTTP_MAX_CONNECTIONS_PER_CLIENT=0 \\": "serves on a network behind a reverse proxy "
    "(test_proxy_configs.py runs nginx and Caddy with docs/deploy.md's configurations)",
    'echo "VEDIT_SIGNING_SECRET=$(openssl rand -hex 32)" > .env': "needs Docker (none here)",
}
RUN = (
    "KEY=<the key printed at start>",
    "curl -s http://127.0.0.1:8000/v1/video/generations/<task_id>",
    "export VEDIT_API_KEY=<the key vedit serve printed>",
    "id=$(.venv/bin/vedit submit clip.mp4",
    ".venv/bin/vedit submit clip.avi look.gif",
    "import sys\n\nimport vedit\n\ntry:\n    with vedit.Client()",
    "import asyncio\nimport sys",
    "curl -sS http://127.0.0.1:8000/v1/uploads",
    "import dashscope",
    "from dashscope.common.error import InvalidInput",
    "vedit keys create --name my-app",
)


def replaced(s: Snippet, old: str, new: str) -> Snippet:
    """``s`` as a reader who changed ``old`` into ``new`` runs it."""
    assert old in s.code, (old, str(s))
    return Snippet(s.lang, s.line, s.code.replace(old, new), s.page)


def test_every_snippet_is_run_here_or_says_why_not() -> None:
    for s in snippets():
        run = [p for p in RUN if s.code.startswith(p)]
        skipped = [p for p in NOT_RUN if s.code.startswith(p)]
        assert len(run) + len(skipped) == 1, f"{s}: add it to RUN (and a test) or to NOT_RUN"


class Shell:
    """Runs snippets as a reader would: in a folder with the files they name, with this
    virtualenv's ``bin`` first on PATH and the server's address and key in the environment."""

    def __init__(self, server: VeditServer, folder: Path) -> None:
        self.server, self.folder = server, folder
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("VEDIT_")}
        self.env |= {
            "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ['PATH']}",
            "VEDIT_BASE_URL": server.base,
            "VEDIT_API_KEY": server.key,
            "KEY": server.key,  # as the Quickstart's first snippet leaves it in the shell
            "PYTHONPATH": "",
        }
        self.values = {"<task_id>": ""}

    def code(self, s: Snippet) -> str:
        """The snippet with the reader's values in place of its placeholders."""
        text = s.code
        port = self.server.base.rsplit(":", 1)[1]
        for placeholder in ("<the key printed at start>", "<the key vedit serve printed>",
                            "<a vedit key>", "<key>"):  # fmt: skip
            text = text.replace(placeholder, self.server.key)
        text = text.replace("<task_id>", self.values["<task_id>"])
        text = text.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        text = text.replace("/home/me/", f"{self.folder}/")
        left = re.findall(r"<[a-z][a-z_ ]*>", text)
        assert not left, f"placeholders this test does not fill: {left}"
        return text

    def run(
        self, s: Snippet, *, folder: Path | None = None, timeout: float = 300, **env: str
    ) -> subprocess.CompletedProcess[str]:
        argv = ["bash", "-c"] if s.lang == "bash" else [sys.executable, "-c"]
        return subprocess.run(
            [*argv, self.code(s)], cwd=folder or self.folder, env={**self.env, **env},
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip


@pytest.fixture(scope="module")
def shell(server: VeditServer, media_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Shell:
    folder = tmp_path_factory.mktemp("readme")
    shutil.copy(media_dir / "silent.mp4", folder / "clip.mp4")
    shutil.copy(media_dir / "coffee.jpg", folder / "look.jpg")
    make_video(folder / "clip.avi", container="avi", codec="mpeg4", seconds=4)
    Image.open(media_dir / "coffee.jpg").save(folder / "look.gif")
    (folder / ".venv").symlink_to(VENV)
    return Shell(server, folder)


@pytest.fixture
def empty(tmp_path: Path) -> Path:
    """A folder with none of the files the snippets name (but the virtualenv)."""
    (tmp_path / ".venv").symlink_to(VENV)
    return tmp_path


def clean(out: subprocess.CompletedProcess[str]) -> str:
    """``out``'s stderr, asserted free of tracebacks."""
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout, out.stderr
    return out.stderr


# --- the Quickstart ----------------------------------------------------------------------


def test_quickstart_upload_create_and_poll(shell: Shell, empty: Path) -> None:
    import json

    create = snippet("KEY=<the key printed at start>")
    out = shell.run(create)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["status"] == "queued" and answer["task_id"].startswith("asyntask_")
    shell.values["<task_id>"] = answer["task_id"]
    poll = shell.run(snippet("curl -s http://127.0.0.1:8000/v1/video/generations/<task_id>"))
    assert poll.returncode == 0 and json.loads(poll.stdout)["data"]["task_id"] == answer["task_id"]

    # A file that is not there: one line that names it, and nothing is created.
    missing = shell.run(create, folder=empty)
    assert missing.returncode != 0 and missing.stdout == ""
    assert clean(missing).strip() == "up: clip.mp4: no such file"
    # A wrong key: the server's message.
    wrong = shell.run(replaced(create, "<the key printed at start>", "vk-wrong-key-000"))
    assert wrong.returncode != 0 and wrong.stdout == ""
    assert clean(wrong).strip() == "up: the API key is unknown or revoked"
    # No server: curl's own line.
    down = shell.run(replaced(create, "127.0.0.1:8000", f"127.0.0.1:{free_port()}"))
    assert down.returncode != 0 and down.stdout == ""
    assert clean(down).startswith("curl: (7) Failed to connect to 127.0.0.1 port")


# --- the API (docs/api.md) -----------------------------------------------------------------


def test_upload_with_curl(shell: Shell, empty: Path) -> None:
    import json

    upload = snippet("curl -sS http://127.0.0.1:8000/v1/uploads")
    out = shell.run(upload)
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    assert answer["kind"] == "video" and answer["filename"] == "clip.mp4", answer
    assert answer["id"].startswith("up_") and "/v1/uploads/" in answer["url"], answer
    # A file that is not there: curl's own line, and nothing is sent.
    missing = shell.run(upload, folder=empty)
    assert missing.returncode != 0 and missing.stdout == ""
    assert clean(missing).startswith("curl: (26)"), missing.stderr


# --- from the shell ----------------------------------------------------------------------


def test_from_the_shell_submit_and_wait(shell: Shell, empty: Path) -> None:
    waited = snippet("export VEDIT_API_KEY=<the key vedit serve printed>")
    out = shell.run(waited)
    assert out.returncode == 0, out.stderr
    task_id, saved = out.stdout.split()
    assert task_id.startswith("asyntask_") and saved == "edited.mp4"
    assert (shell.folder / "edited.mp4").stat().st_size > 0
    assert f"{task_id} SUCCESS 100%" in clean(out)

    missing = shell.run(waited, folder=empty)
    assert missing.returncode == 2 and missing.stdout == ""
    assert "'clip.mp4' is neither an http(s) URL nor a file" in clean(missing)
    down = shell.run(waited, VEDIT_BASE_URL=f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 3 and "is `vedit serve` running?" in clean(down)

    steps = snippet("id=$(.venv/bin/vedit submit clip.mp4")
    out = shell.run(steps)
    assert out.returncode == 3, out.stderr  # the last line: a task that has ended
    assert "HTTP 400 task_not_cancelable" in clean(out)
    lines = out.stdout.splitlines()
    assert re.match(r"asyntask_\w+ (QUEUED|IN_PROGRESS|SUCCESS) ", lines[0]), lines
    assert lines[-2:] == ["edited.mp4", "again.mp4"], lines
    # A file that is not there stops the steps at the first, with one error.
    missing = shell.run(steps, folder=empty)
    assert missing.returncode == 2 and missing.stdout == ""
    assert clean(missing).count("Error") == 1, missing.stderr


def test_from_the_shell_convert(shell: Shell, empty: Path) -> None:
    out = shell.run(snippet(".venv/bin/vedit submit clip.avi look.gif"))
    assert out.returncode == 0, out.stderr
    task_id, converted = out.stdout.split()
    assert task_id.startswith("asyntask_") and converted == "clip-converted.mp4"
    assert "converting clip.avi, an AVI video (avi), into an H.264 MP4" in clean(out)
    assert shell.server.wait(task_id)["status"] == "SUCCESS"
    missing = shell.run(snippet(".venv/bin/vedit submit clip.avi look.gif"), folder=empty)
    assert missing.returncode == 2 and "'clip.avi' is neither" in clean(missing)


def test_keys_and_limits(shell: Shell, empty: Path) -> None:
    out = shell.run(snippet("vedit keys create --name my-app"), folder=empty)
    assert out.returncode == 0, out.stderr
    made = [line for line in out.stdout.splitlines() if line.startswith("vk-")]
    assert len(made) == 2 and "│ unlimited" in out.stdout
    assert out.stdout.rstrip().splitlines()[-1].startswith("revoked key 1 'my-app' (vk-")


# --- from Python -----------------------------------------------------------------------------


def test_from_python(shell: Shell, empty: Path) -> None:
    client = snippet("import sys\n\nimport vedit\n\ntry:\n    with vedit.Client()")
    out = shell.run(client)
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == "color_grade edited.mp4"
    assert "SUCCESS 100" in out.stdout
    async_client = snippet("import asyncio\nimport sys")
    out = shell.run(async_client)
    assert out.returncode == 0, out.stderr
    assert re.fullmatch(r"SUCCESS http://127\.0\.0\.1:\d+/v1/files/asyntask_\S+\n", out.stdout)

    for code in (client, async_client):
        missing = shell.run(code, folder=empty)
        assert missing.returncode == 1 and re.fullmatch(
            r"vedit: (video|upload): no file 'clip\.mp4' \(and it is not an http\(s\) URL\)\n",
            clean(missing),
        ), missing.stderr
        port = free_port()
        down = shell.run(code, VEDIT_BASE_URL=f"http://127.0.0.1:{port}")
        if code is async_client:  # its URL is in the code
            down = shell.run(replaced(code, "127.0.0.1:8000", f"127.0.0.1:{port}"))
        assert down.returncode == 1, down.stderr
        assert clean(down).startswith(f"vedit: cannot reach http://127.0.0.1:{port} (")


def test_the_dashscope_sdk(shell: Shell, empty: Path) -> None:
    example = snippet("import dashscope")
    out = shell.run(example)
    assert out.returncode == 0, out.stderr
    clean(out)
    # example.com serves no such files (and this machine may be offline): the task fails,
    # and the snippet prints why.
    assert out.stdout.startswith("FAILED InvalidURL."), out.stdout
    wrong = shell.run(replaced(example, "<a vedit key>", "vk-wrong-key-000"))
    assert wrong.returncode == 0 and wrong.stdout.startswith("401 InvalidApiKey "), wrong.stdout
    clean(wrong)
    # Continuing it with local files, through the SDK's own upload flow.
    local = snippet("from dashscope.common.error import InvalidInput")
    together = Snippet("python", local.line, example.code + local.code, local.page)
    out = shell.run(together)
    assert out.returncode == 0, out.stderr
    clean(out)
    status, task_id = out.stdout.split()[-2:]
    assert status == "200" and task_id.startswith("asyntask_"), out.stdout
    assert shell.server.wait(task_id)["status"] == "SUCCESS"
    missing = shell.run(replaced(together, "/home/me/", f"{empty}/"))
    assert missing.returncode == 1 and missing.stdout.startswith("FAILED InvalidURL.")
    assert re.fullmatch(rf"dashscope: The file: {empty}/\w+\.\w+ is not exists!\n", clean(missing))
