"""The client commands of ``vedit``: submit, status, wait, download, cancel, and convert
(a local file into one the API takes).

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
import shlex
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from rich.console import Console

from vedit.engines.plan import plan_in_words, plan_warning

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
    warning = plan_warning(plan)
    if warning:  # the video is made, but not as asked: never a silent success
        _say(warning)
    path = client.download(task, output or Path(f"{task.id}.mp4"))
    _say(f"saved {path} ({path.stat().st_size:,} bytes)")
    if not as_json:
        typer.echo(path)


def _refuse(message: str) -> NoReturn:
    """One line on stderr and exit 2 (what the API would refuse, said before anything is sent)."""
    _say(f"vedit: {message}")
    raise typer.Exit(2)


def how_to_convert(value: str, kind: str, option: str | None = "--convert") -> str:
    """What to run to convert the file ``value`` of ``kind`` into one the API takes (this
    command's ``option`` too, when it has one)."""
    src = Path(value)
    dest = src.with_suffix(".mp4" if kind == "video" else ".png")
    if dest == src:
        dest = src.with_name(f"{src.stem}-converted{src.suffix}")
    into = "an H.264 MP4" if kind == "video" else "a PNG"
    command = f"`vedit convert {shlex.quote(value)} {shlex.quote(str(dest))}`"
    if option is None:
        return f"convert it into {into} on this machine (no ffmpeg needed) with {command}"
    return (
        f"convert it into {into} on this machine (no ffmpeg needed) with {option} here, or "
        f"first with {command}"
    )


def _convert_into(path: Path, kind: str, what: str, folder: Path) -> Path:
    """``path`` converted into ``folder`` (an H.264 MP4, or a PNG), under its own name."""
    from vedit.media.convert import ConversionFailed, convert_image, convert_video

    dest = folder / f"{path.stem or kind}{'.mp4' if kind == 'video' else '.png'}"
    _say(f"converting {path}, {what}, into {'an H.264 MP4' if kind == 'video' else 'a PNG'}")
    try:
        made = convert_video(path, dest) if kind == "video" else convert_image(path, dest)
    except ConversionFailed as exc:
        _refuse(str(exc))
    sound = ", with its sound" if made.has_audio else ""
    frames = f"{made.frames} frames of " if kind == "video" else ""
    _say(f"converted {path}: {frames}{made.width}x{made.height}{sound} "
         f"({dest.stat().st_size:,} bytes)")  # fmt: skip
    return dest


def _local_media(
    value: str, name: str, kind: str, *, convert: bool, folder: Callable[[], Path], settings: Any
) -> str:
    """``value`` as it will be sent: a URL as it is; a local file checked from its headers
    against the media limits (exit 2 naming the file, the limit and the value seen), or with
    ``convert`` its conversion when its format is refused."""
    from vedit.client import is_url
    from vedit.media.limits import MediaLimits
    from vedit.media.local_files import LocalFileRefused, NeedsConversion, check_local

    if is_url(value):
        return value
    path = Path(value)
    if not path.is_file():
        raise typer.BadParameter(f"{value!r} is neither an http(s) URL nor a file", param_hint=name)
    try:
        check_local(path, kind, MediaLimits.of(settings), label=f"{value} ({name})")
        return value
    except NeedsConversion as exc:
        if not convert:
            _refuse(f"{exc.message}: {how_to_convert(value, kind)}")
        made = _convert_into(path, kind, exc.what, folder())
    except LocalFileRefused as exc:
        _refuse(exc.message)
    try:
        check_local(made, kind, MediaLimits.of(settings), label=f"{value} ({name}, converted)")
    except LocalFileRefused as exc:
        _refuse(exc.message)
    return str(made)


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
    convert: bool = typer.Option(
        False,
        "--convert",
        help="Convert a local file in a format the API refuses first, on this machine: a "
        "video (AVI, MKV, WebM…) into an H.264 MP4, an image (GIF, TIFF…) into a PNG.",
    ),
    output: Path | None = OUTPUT,
    timeout: float | None = TIMEOUT,
    as_json: bool = JSON,
    server: str = SERVER,
    key: str | None = KEY,
) -> None:
    """Create an edit task; local files are checked against the media limits (from their
    headers) and uploaded first. Prints the task id."""
    # Everything is checked before the first byte is sent: a typo is a usage error (exit 2).
    if resolution is not None and resolution not in ("720P", "1080P"):
        raise typer.BadParameter(f"{resolution!r} is not 720P or 1080P", param_hint="--resolution")
    if audio is not None and audio not in ("auto", "origin"):
        raise typer.BadParameter(f"{audio!r} is not auto or origin", param_hint="--audio")
    from vedit.cli import load_settings
    from vedit.client import is_url

    settings = load_settings()  # the media limits (VEDIT_VIDEO_*, VEDIT_IMAGE_*)
    converted = contextlib.ExitStack()

    def folder() -> Path:
        """A folder for a converted copy, removed once the files are uploaded."""
        return Path(converted.enter_context(tempfile.TemporaryDirectory(prefix="vedit-")))

    with converted:
        sent = [
            _local_media(value, name, kind, convert=convert, folder=folder, settings=settings)
            for value, name, kind in ((video, "VIDEO", "video"), (reference, "REF", "image"))
        ]
        with _client(server, key) as client:
            urls = []
            # The image first: it is small, and a refused image then costs no clip upload.
            for value, given in ((sent[1], reference), (sent[0], video)):
                if is_url(value):
                    urls.append(value)
                    continue
                up = client.upload(value)
                _say(f"uploaded {given} ({up.bytes:,} bytes, {up.kind}) as {up.id}")
                urls.append(up.url)
            converted.close()  # uploaded: the converted copies are no longer needed
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


def convert(
    src: Path = typer.Argument(..., metavar="IN", help="The file to convert."),
    dest: Path = typer.Argument(
        ...,
        metavar="OUT",
        help="Where to write: .mp4 or .mov for a video (H.264, AAC), .png, .jpg, .webp or "
        ".bmp for an image.",
    ),
) -> None:
    """Convert a video (AVI, MKV, WebM, FLV…) into an H.264 MP4 or MOV, or an image (GIF,
    TIFF…) into a PNG, JPEG, WEBP or BMP, on this machine (PyAV and Pillow: no ffmpeg
    command needed). Frames, size, rate and sound are kept. Prints OUT."""
    from vedit.cli import load_settings
    from vedit.media.convert import (
        IMAGE_SUFFIXES,
        VIDEO_SUFFIXES,
        ConversionFailed,
        convert_image,
        convert_video,
    )
    from vedit.media.limits import MediaLimits
    from vedit.media.local_files import LocalFileRefused, check_local

    suffix = dest.suffix.lower()
    if suffix not in VIDEO_SUFFIXES + IMAGE_SUFFIXES:
        raise typer.BadParameter(
            f"{str(dest)!r} ends in {suffix or 'no suffix'!r}; OUT ends in .mp4 or .mov (a "
            "video) or .png, .jpg, .webp or .bmp (an image)",
            param_hint="OUT",
        )
    if not src.is_file():
        raise typer.BadParameter(f"{str(src)!r} is not a file", param_hint="IN")
    if dest.resolve() == src.resolve():
        raise typer.BadParameter("OUT must be another file than IN", param_hint="OUT")
    kind = "video" if suffix in VIDEO_SUFFIXES else "image"
    partial = dest.with_name(f".{dest.name}.part{suffix}")  # never a half-written OUT
    try:
        if kind == "video":
            made = convert_video(src, partial, container="mov" if suffix == ".mov" else "mp4")
        else:
            made = convert_image(src, partial)
        partial.replace(dest)
    except ConversionFailed as exc:
        _refuse(str(exc).replace(str(partial), str(dest)))
    finally:
        partial.unlink(missing_ok=True)
    sound = ", with its sound" if made.has_audio else ""
    frames = f"{made.frames} frames of " if kind == "video" else ""
    _say(f"wrote {dest}: {frames}{made.width}x{made.height}{sound} "
         f"({dest.stat().st_size:,} bytes)")  # fmt: skip
    try:
        check_local(dest, kind, MediaLimits.of(load_settings()))
    except LocalFileRefused as exc:  # converted, but still outside a limit
        _say(f"vedit: note: the API will refuse it as it is: {exc.message}")
    typer.echo(dest)


COMMANDS: tuple[Callable[..., None], ...] = (submit, status, wait, download, cancel, convert)


def register(app: typer.Typer, command_cls: type) -> None:
    """Add the client commands to ``app`` (``cli.py``'s), with its help style."""
    for command in COMMANDS:
        app.command(cls=command_cls)(command)
