"""The client commands of ``vedit``: submit, status, wait, download, cancel.

They talk to a running server through :class:`vedit.Client` (``client.py``);
the server's own commands (serve, worker, keys) are in ``cli.py``, which
registers these on the same app. Exit codes scripts can rely on: 0 success,
1 a task that has no result yet (``download``), 2 a usage error, 3 an API
error or an unreachable server, 4 a task that ended ``FAILURE``, 5 a timeout,
130 Ctrl-C while waiting (the task goes on).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from vedit.engines.plan import plan_in_words

if TYPE_CHECKING:
    from vedit.client import Client, Task

EXIT_NOT_FINISHED, EXIT_API_ERROR, EXIT_TASK_FAILED, EXIT_TIMEOUT = 1, 3, 4, 5
EXIT_INTERRUPTED = 130  # Ctrl-C while waiting, as a shell reports SIGINT

err = Console(stderr=True, highlight=False, soft_wrap=True)

SERVER = typer.Option(
    "http://127.0.0.1:8000",
    "--server",
    envvar="VEDIT_BASE_URL",
    metavar="URL",
    show_default=False,
    show_envvar=False,
    help="The API's base URL (default VEDIT_BASE_URL, http://127.0.0.1:8000).",
)
KEY = typer.Option(
    None,
    "--key",
    envvar="VEDIT_API_KEY",
    show_envvar=False,
    metavar="KEY",
    help="API key (default VEDIT_API_KEY).",
)
JSON = typer.Option(False, "--json", help="Print the server's answer as JSON, as sent.")
TIMEOUT = typer.Option(
    None, "--timeout", metavar="S", help="Give up after S seconds (exit 5; default: no limit)."
)
OUTPUT = typer.Option(
    None, "-o", "--output", metavar="OUT.mp4", help="Where to save the video (default ID.mp4)."
)


def _say(message: str) -> None:
    """A line for people, on stderr (stdout is for what scripts read)."""
    err.print(message, markup=False)


@contextlib.contextmanager
def _client(server: str, key: str | None) -> Iterator[Client]:
    """A client for the command, with every client error mapped to its exit code."""
    from vedit.client import ApiError, Client, TaskFailed, TaskNotFinished, WaitTimeout

    if not key:
        raise typer.BadParameter("no API key: pass --key or set VEDIT_API_KEY", param_hint="--key")
    try:
        with Client(server, key) as client:
            yield client
    except ApiError as exc:
        if exc.status == 0 and exc.message.startswith(f"cannot reach {server.rstrip('/')}"):
            _say(f"vedit: {exc.message}: is `vedit serve` running?")
        elif exc.status == 0:
            _say(f"vedit: {exc.message}")
        else:
            _say(f"vedit: HTTP {exc.status} {exc.code}: {exc.message}")
        raise typer.Exit(EXIT_API_ERROR) from None
    except TaskFailed as exc:
        _say(f"vedit: task {exc.task.id} {exc.task.task_status}: {exc.code}: {exc.message}")
        raise typer.Exit(EXIT_TASK_FAILED) from None
    except WaitTimeout as exc:
        _say(f"vedit: {exc}; `vedit wait {exc.task.id}` waits on")
        raise typer.Exit(EXIT_TIMEOUT) from None
    except TaskNotFinished as exc:
        _say(f"vedit: {exc}; `vedit wait {exc.task.id}` waits for it and downloads it")
        raise typer.Exit(EXIT_NOT_FINISHED) from None


def _print_json(task: Task) -> None:
    typer.echo(json.dumps(task.raw, ensure_ascii=False, indent=2))


class _ProgressView:
    """A progress bar on a terminal; elsewhere (pipes, logs) one line per status change."""

    def __init__(self, task_id: str) -> None:
        self.task_id = task_id
        self.status: str | None = None
        self.bar: Any = None

    def __enter__(self) -> _ProgressView:
        if err.is_terminal:
            from rich.progress import BarColumn, Progress, TaskProgressColumn, TimeElapsedColumn

            self.bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                TaskProgressColumn(),
                TimeElapsedColumn(),
                console=err,
            )
            self.bar.start()
            self.row = self.bar.add_task(f"{self.task_id} QUEUED", total=100)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()

    def __call__(self, task: Task) -> None:
        if self.bar is not None:
            self.bar.update(
                self.row, completed=task.progress, description=f"{task.id} {task.status}"
            )
        elif task.status != self.status:
            _say(f"{task.id} {task.status} {task.progress}%")
        self.status = task.status


def _wait_and_save(
    client: Client, task_id: str, output: Path | None, timeout: float | None, as_json: bool
) -> None:
    """Wait with a progress view; save the video (exit 4 on failure, 5 on timeout)."""
    from vedit.client import WaitTimeout

    try:
        with _ProgressView(task_id) as view:
            task = client.wait(task_id, timeout=timeout, on_progress=view)
    except WaitTimeout as exc:
        if as_json:
            _print_json(exc.task)
        raise
    except KeyboardInterrupt:
        _say(f"vedit: stopped waiting; task {task_id} goes on (`vedit wait {task_id}`, "
             f"`vedit cancel {task_id}`)")  # fmt: skip
        raise typer.Exit(EXIT_INTERRUPTED) from None
    if as_json:
        _print_json(task)
    plan = task.edit_plan or {}
    if plan.get("operation"):
        _say(f"plan: {plan_in_words(plan)}")
    task.raise_for_failure()
    path = client.download(task, output or Path(f"{task.id}.mp4"))
    _say(f"saved {path} ({path.stat().st_size:,} bytes)")
    if not as_json:
        typer.echo(path)


def _media_arg(value: str, name: str, kind: str) -> str:
    """``value`` if it is a URL or a local file of ``kind`` (video, image) by its first bytes."""
    from vedit.client import is_url

    if is_url(value):
        return value
    if not Path(value).is_file():
        raise typer.BadParameter(f"{value!r} is neither an http(s) URL nor a file", param_hint=name)
    from vedit.uploads.intake import ACCEPTED, SNIFF_BYTES, sniff

    with open(value, "rb") as f:
        found = sniff(f.read(SNIFF_BYTES))
    if found is None:
        raise typer.BadParameter(f"{value!r} is not {ACCEPTED}", param_hint=name)
    if found.kind != kind:
        raise typer.BadParameter(
            f"{value!r} is {'an' if found.kind == 'image' else 'a'} {found.kind} "
            f"({found.content_type}), not {'an' if kind == 'image' else 'a'} {kind}: "
            "the clip comes first, then the reference image",
            param_hint=name,
        )
    return value


def submit(
    video: str = typer.Argument(
        ..., metavar="VIDEO", help="The clip: an http(s) URL or a local file."
    ),
    reference: str = typer.Argument(
        ..., metavar="REF", help="The reference image: an http(s) URL or a local file."
    ),
    prompt: str = typer.Option(..., "-p", "--prompt", metavar="PROMPT", help="What to do."),
    resolution: str | None = typer.Option(
        None,
        "--resolution",
        metavar="720P|1080P",
        help="Output tier (the server's default: 1080P).",
    ),
    seed: int | None = typer.Option(
        None, "--seed", metavar="N", help="0..2147483647 (default: drawn)."
    ),
    watermark: bool = typer.Option(
        True,
        "--watermark/--no-watermark",
        show_default=False,
        help="Mark the video as AI-made (default: yes).",
    ),
    audio: str | None = typer.Option(
        None, "--audio", metavar="auto|origin", help="audio_setting (the server's default: auto)."
    ),
    wait: bool = typer.Option(False, "--wait", help="Wait for the end and save the video."),
    output: Path | None = OUTPUT,
    timeout: float | None = TIMEOUT,
    as_json: bool = JSON,
    server: str = SERVER,
    key: str | None = KEY,
) -> None:
    """Create an edit task; local files are uploaded first. Prints the task id."""
    _media_arg(video, "VIDEO", "video")
    _media_arg(reference, "REF", "image")
    # Checked here too, before any file is uploaded: a typo is a usage error (exit 2).
    if resolution is not None and resolution not in ("720P", "1080P"):
        raise typer.BadParameter(f"{resolution!r} is not 720P or 1080P", param_hint="--resolution")
    if audio is not None and audio not in ("auto", "origin"):
        raise typer.BadParameter(f"{audio!r} is not auto or origin", param_hint="--audio")
    from vedit.client import is_url

    with _client(server, key) as client:
        urls = []
        # The image first: it is small, and a refused image then costs no clip upload.
        for value in (reference, video):
            if is_url(value):
                urls.append(value)
                continue
            up = client.upload(value)
            _say(f"uploaded {value} ({up.bytes:,} bytes, {up.kind}) as {up.id}")
            urls.append(up.url)
        task = client.create(
            urls[1], urls[0], prompt, resolution=resolution, watermark=watermark, seed=seed,
            audio_setting=audio,
        )  # fmt: skip
        if as_json and not wait:
            _print_json(task)
        elif not as_json:
            typer.echo(task.id)
        if wait:
            _wait_and_save(client, task.id, output, timeout, as_json)


def status(
    task_id: str = typer.Argument(..., metavar="ID", help="The task id."),
    as_json: bool = JSON,
    server: str = SERVER,
    key: str | None = KEY,
) -> None:
    """Show a task: its status, progress, result or failure, and edit plan."""
    with _client(server, key) as client:
        task = client.get(task_id)
    if as_json:
        _print_json(task)
        return
    typer.echo(f"{task.id} {task.status} ({task.task_status}) {task.progress}%")
    if task.result_url:
        typer.echo(f"video: {task.result_url}")
    if task.failed:
        typer.echo(f"failure: {task.code}: {task.message}")
    plan = task.edit_plan or {}
    if plan.get("operation"):
        typer.echo(f"plan: {plan_in_words(plan)}")
    if task.usage:
        u = task.usage
        typer.echo(
            f"usage: {u.get('SR')}P, {u.get('input_video_duration')} s in, "
            f"{u.get('output_video_duration')} s out, {u.get('ratio')}"
        )


def wait(
    task_id: str = typer.Argument(..., metavar="ID", help="The task id."),
    output: Path | None = OUTPUT,
    timeout: float | None = TIMEOUT,
    as_json: bool = JSON,
    server: str = SERVER,
    key: str | None = KEY,
) -> None:
    """Wait for a task to end, then save its video (exit 4 if it failed, 5 on timeout)."""
    with _client(server, key) as client:
        _wait_and_save(client, task_id, output, timeout, as_json)


def download(
    task_id: str = typer.Argument(..., metavar="ID", help="The task id."),
    output: Path | None = OUTPUT,
    server: str = SERVER,
    key: str | None = KEY,
) -> None:
    """Save a finished task's video (exit 1 while it runs, 4 if it failed)."""
    with _client(server, key) as client:
        path = client.download(task_id, output or Path(f"{task_id}.mp4"))
    _say(f"saved {path} ({path.stat().st_size:,} bytes)")
    typer.echo(path)


def cancel(
    task_id: str = typer.Argument(..., metavar="ID", help="The task id."),
    as_json: bool = JSON,
    server: str = SERVER,
    key: str | None = KEY,
) -> None:
    """Cancel a queued or running task (a task that has ended is an API error, exit 3)."""
    with _client(server, key) as client:
        task = client.cancel(task_id)
    if as_json:
        _print_json(task)
    else:
        typer.echo(f"{task.id} {task.task_status}")


COMMANDS: tuple[Callable[..., None], ...] = (submit, status, wait, download, cancel)


def register(app: typer.Typer, command_cls: type) -> None:
    """Add the client commands to ``app`` (``cli.py``'s), with its help style."""
    for command in COMMANDS:
        app.command(cls=command_cls)(command)
