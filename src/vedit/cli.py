"""The ``vedit`` command: serve, worker, keys, edit (local files, in-process); the client
commands (submit, status, wait, download, cancel) live in ``cli_client.py`` and are
registered here."""

from __future__ import annotations

import errno
import logging
import shlex
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import sessionmaker
from typer.core import TyperArgument, TyperCommand, TyperGroup

from vedit import MODEL_NAME, cli_client
from vedit.config import Settings
from vedit.errors import StartupError

T = TypeVar("T")


def _plain_params(command: TyperCommand | TyperGroup) -> None:
    """Help as click writes it: ``KEY``, not typer's ``{KEY}`` and ``<str>`` placeholders."""
    for param in command.params:
        param.display_type = lambda ctx: ""  # type: ignore[attr-defined]
        if isinstance(param, TyperArgument):
            param._usage_display_name = lambda p=param: p.display_name_raw  # type: ignore[method-assign]


class _Command(TyperCommand):
    def format_help(self, ctx: Any, formatter: Any) -> None:
        _plain_params(self)
        super().format_help(ctx, formatter)

    def format_usage(self, ctx: Any, formatter: Any) -> None:
        _plain_params(self)
        super().format_usage(ctx, formatter)


class _Group(TyperGroup):
    def format_help(self, ctx: Any, formatter: Any) -> None:
        _plain_params(self)
        super().format_help(ctx, formatter)


# Plain help (no rich panels, which print type placeholders such as <bool>).
app = typer.Typer(
    cls=_Group,
    help="vedit: the HappyHorse 1.0 video-edit API on your own machine.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,
)
keys_app = typer.Typer(
    cls=_Group, help="Manage API keys.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(keys_app, name="keys")
db_app = typer.Typer(
    cls=_Group,
    help="The database's schema (VEDIT_DATABASE_URL).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(db_app, name="db")
console = Console()


def _print_version(value: bool) -> None:
    if value:
        from vedit import __version__

        typer.echo(f"vedit {__version__} ({MODEL_NAME})")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """vedit: the HappyHorse 1.0 video-edit API on your own machine."""


DATA_DIR = typer.Option(
    None,
    metavar="DIR",
    help="This host's folder: the SQLite database, local results and uploads, work dirs "
    "(default VEDIT_DATA_DIR, ./data).",
)


def load_settings() -> Settings:
    """The settings from the environment; a value that cannot be its setting's is one line
    naming the variable, the value and what it must be, and exit 1."""
    from pydantic import ValidationError

    try:
        return Settings()
    except ValidationError as exc:
        for error in exc.errors():
            name = "VEDIT_" + "_".join(str(part) for part in error["loc"]).upper()
            why = str(error["msg"]).removeprefix("Value error, ")
            if why.startswith(name):  # the setting's own check already names it
                typer.echo(f"vedit: {why}", err=True)
            else:
                typer.echo(f"vedit: {name} is {error.get('input')!r}: {why}", err=True)
        raise typer.Exit(1) from None


def _settings(data_dir: Path | None) -> Settings:
    """The settings, with ``--data-dir`` over ``VEDIT_DATA_DIR``."""
    settings = load_settings()
    return settings if data_dir is None else settings.model_copy(update={"data_dir": data_dir})


def _database_or_exit(settings: Settings, step: Any) -> Any:
    """``step()``; a database that is not usable (no driver, a schema behind, no answer) is
    one line naming VEDIT_DATABASE_URL, and exit 1."""
    from sqlalchemy.exc import OperationalError

    from vedit.db import shown_url

    try:
        return step()
    except StartupError as exc:  # a driver that is not installed, a schema behind
        typer.echo(f"vedit: {exc}", err=True)
    except OperationalError as exc:
        typer.echo(
            f"vedit: the database at VEDIT_DATABASE_URL="
            f"{shown_url(settings.resolved_database_url)!r} does not answer: "
            f"{str(exc.orig or exc).strip().splitlines()[0]}",
            err=True,
        )
    raise typer.Exit(1)


def _prepare(settings: Settings) -> None:
    """Make the data dir; migrate the database (SQLite, or VEDIT_AUTO_MIGRATE=true) or check
    that its schema is at head (other databases), else exit 1 saying `vedit db upgrade`."""
    from vedit.db import prepare_database

    settings.ensure_dirs()
    _database_or_exit(
        settings,
        lambda: prepare_database(settings.resolved_database_url, settings.migrates_on_start),
    )
    shared = settings.storage == "s3" or not settings.resolved_database_url.startswith("sqlite")
    if shared and not settings.signing_secret:
        typer.echo(
            f"vedit: warning: VEDIT_SIGNING_SECRET is not set, so this host signs links with its "
            f"own key file {settings.data_dir / 'signing.key'}; every host on this database or "
            "bucket must share one VEDIT_SIGNING_SECRET, or they refuse each other's upload "
            "links and policies",
            err=True,
        )


def _sessions(settings: Settings) -> sessionmaker:
    from vedit.db import make_engine, make_sessionmaker

    engine = _database_or_exit(settings, lambda: make_engine(settings.resolved_database_url))
    return make_sessionmaker(engine)


def _existing_sessions(settings: Settings) -> sessionmaker | None:
    """Sessions on the database if it exists (commands that only read never create one)."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.resolved_database_url)
    local = url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:")
    if local and not Path(str(url.database)).is_file():
        return None
    return _sessions(settings)


def _command() -> str:
    """How to run vedit again from here: ``vedit`` when that is on PATH, else the path this
    process was started by (``.venv/bin/vedit`` in the Quickstart)."""
    import shutil
    import sys

    invoked = Path(sys.argv[0])
    found = shutil.which("vedit")
    if invoked.name != "vedit" or (found and Path(found).resolve() == invoked.resolve()):
        return "vedit"
    return str(invoked)


def _example_curl(base: str, key: str) -> str:
    body = (
        f'{{"model": "{MODEL_NAME}", "input": {{"prompt": "make it look like the reference photo", '
        '"media": [{"type": "video", "url": "https://example.com/source.mp4"}, '
        '{"type": "reference_image", "url": "https://example.com/look.jpg"}]}, '
        '"parameters": {"resolution": "720P", "watermark": false}}'
    )
    return (
        f"curl -s {base}/v1/video/generations -H {shlex.quote('Authorization: Bearer ' + key)} "
        f"-H 'Content-Type: application/json' -d {shlex.quote(body)}"
    )


@app.command(cls=_Command)
def serve(
    host: str = typer.Option(
        "127.0.0.1", envvar="VEDIT_HOST", metavar="ADDRESS", help="Address to listen on."
    ),
    port: int = typer.Option(8000, envvar="VEDIT_PORT", metavar="PORT", help="Port to listen on."),
    workers: int | None = typer.Option(
        None, metavar="N", help="Worker processes (default VEDIT_WORKERS, one per CPU)."
    ),
    data_dir: Path | None = DATA_DIR,
    media_allow: str | None = typer.Option(
        None,
        metavar="HOST:PORT,...",
        help="Fetch media from these non-public host:port pairs too, e.g. a folder served on "
        "127.0.0.1:8001 (default VEDIT_MEDIA_ALLOW).",
    ),
) -> None:
    """Start the API and its workers (SQLite, local files, CPU engine by default)."""
    from sqlalchemy.exc import IntegrityError

    from vedit.api.app import create_app
    from vedit.api.deps import RateLimiter
    from vedit.api.http_server import run_server
    from vedit.dispatch import dispatcher_from
    from vedit.keys import (
        KeyNameTaken,
        count_active_keys,
        create_key,
        free_name,
        hash_key,
        list_keys,
    )

    settings = load_settings()
    update: dict[str, object] = {}
    if workers is not None:
        update["workers"] = workers
    if data_dir is not None:
        update["data_dir"] = data_dir
    if media_allow is not None:
        update["media_allow"] = Settings.split_allow(media_allow)
    if not settings.public_base_url:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        update["public_base_url"] = f"http://{shown}:{port}"
    settings = settings.model_copy(update=update)
    listeners = _listen_or_exit(host, port)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    _prepare(settings)
    _or_exit(lambda: RateLimiter(settings.rate_limit_storage).check())
    stored = _storage_or_exit(settings)
    # The workers first: a server whose workers cannot run says so before anything else.
    # (VEDIT_DISPATCH=celery: no workers here; the broker must answer instead.)
    dispatcher = _or_exit(lambda: dispatcher_from(settings))
    _or_exit(dispatcher.start)
    try:
        sessions = _sessions(settings)
        base = settings.public_base_url.rstrip("/")
        known = {k.key_hash for k in list_keys(sessions)}
        if settings.api_key and hash_key(settings.api_key) not in known:
            try:  # named VEDIT_API_KEY, or VEDIT_API_KEY-2… when an earlier one is active
                name = free_name(sessions, "VEDIT_API_KEY")
                create_key(sessions, name, key=settings.api_key)
                console.print(f"API key from VEDIT_API_KEY added as {name!r}.")
            except (IntegrityError, KeyNameTaken):  # another server here added it just now
                pass
        if count_active_keys(sessions) == 0:
            key, _ = create_key(sessions, "default")
            console.print(f"[bold]API key[/bold] (shown once): {key}")
            console.print(
                f"Try it (replace the example URLs):\n{_example_curl(base, key)}", soft_wrap=True
            )
            upload = (
                f"curl -s {base}/v1/uploads -H {shlex.quote('Authorization: Bearer ' + key)} "
                "-F file=@clip.mp4"
            )
            console.print(
                f"Files on this machine: upload each one and put the answer's url in "
                f"media[].url:\n{upload}\nor run `{_command()} submit clip.mp4 look.jpg -p "
                f"'...' --wait` (VEDIT_API_KEY set to the key), or open {base}/ in a browser.",
                soft_wrap=True,
            )
        allowed = ", ".join(settings.media_allow) or "public addresses only"
        if settings.dispatch == "celery":
            from vedit.dispatch.celery import _shown_broker

            doing = f"tasks sent to {_shown_broker(settings.broker_url)} for `vedit worker`"
            if workers is not None:
                doing += " (--workers is for `vedit worker` with VEDIT_DISPATCH=celery)"
        else:
            doing = f"with {settings.workers} worker(s), engine {settings.engine}"
        console.print(
            f"vedit on {base} {doing}; data in {settings.data_dir.resolve()}; {stored}; "
            f"media from {allowed}",
            soft_wrap=True,
        )

        run_server(create_app(settings, dispatcher), settings, listeners)
    finally:
        dispatcher.stop()


def _storage_or_exit(settings: Settings) -> str:
    """Open and check the storage of VEDIT_STORAGE; where it cannot be used, say why in one
    line (the setting, and what the store answered) and exit 1. Returns it in words."""
    from vedit.errors import StorageUnavailable
    from vedit.storage import StorageOptions, open_storage

    try:
        storage = open_storage(StorageOptions.of(settings))
        storage.check()
    except StorageUnavailable as exc:
        typer.echo(f"vedit: the storage cannot be used: {exc.message}", err=True)
        raise typer.Exit(1) from None
    return storage.describe()


def _or_exit(step: Callable[[], T]) -> T:
    """``step()``; where vedit cannot start as configured (a rate-limit storage, a Celery or a
    broker, workers that cannot load their engine), the one line that says why, and exit 1."""
    try:
        return step()
    except StartupError as exc:
        typer.echo(f"vedit: {exc}", err=True)
        raise typer.Exit(1) from None


def _listen_or_exit(host: str, port: int) -> list[socket.socket]:
    """The listening sockets, before any work starts; a port in use is one line and exit 1."""
    from vedit.api.http_server import open_listeners

    try:
        return open_listeners(host, port)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            typer.echo(
                f"vedit: port {port} on {host} is already in use; choose another with --port",
                err=True,
            )
        else:
            typer.echo(
                f"vedit: cannot listen on {host} port {port}: {exc.strerror or exc}", err=True
            )
        raise typer.Exit(1) from None


@app.command(cls=_Command)
def worker(
    workers: int | None = typer.Option(
        None, metavar="N", help="Worker processes (default VEDIT_WORKERS, one per CPU)."
    ),
) -> None:
    """Run workers only, on the database of VEDIT_DATABASE_URL (VEDIT_DISPATCH=celery: a
    Celery worker on VEDIT_BROKER_URL, N pool processes)."""
    import signal
    import threading

    from vedit.dispatch.local import LocalDispatcher

    settings = load_settings()
    if workers is not None:
        settings = settings.model_copy(update={"workers": workers})
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    _prepare(settings)
    _storage_or_exit(settings)
    if settings.dispatch == "celery":
        raise typer.Exit(_celery_worker(settings))
    dispatcher = LocalDispatcher(settings)
    _or_exit(dispatcher.start)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    dispatcher.stop()


def _celery_worker(settings: Settings) -> int:
    """``vedit worker`` with VEDIT_DISPATCH=celery; its exit code."""
    from vedit.dispatch.celery import run_worker

    if settings.workers < 1:
        typer.echo("vedit: a Celery worker needs --workers 1 or more", err=True)
        return 2
    return _or_exit(lambda: run_worker(settings))


@db_app.command("upgrade", cls=_Command)
def db_upgrade(data_dir: Path | None = DATA_DIR) -> None:
    """Migrate the database of VEDIT_DATABASE_URL (default: SQLite in the data dir) to the
    schema this vedit needs. Run it once per upgrade, before the servers and workers start."""
    from vedit.db import current_revision, head_revision, migrate, shown_url

    settings = _settings(data_dir)
    settings.ensure_dirs()
    url = settings.resolved_database_url
    before = _database_or_exit(settings, lambda: current_revision(url))
    head = head_revision()
    if before == head:
        typer.echo(f"{shown_url(url)}: already at the head revision {head}")
        return
    _database_or_exit(settings, lambda: migrate(url))
    typer.echo(f"{shown_url(url)}: migrated from revision {before or 'none'} to {head}")


@keys_app.command("create", cls=_Command)
def keys_create(
    name: str = typer.Option(..., "--name", metavar="NAME", help="A name to tell the key by."),
    rate_limit: float | None = typer.Option(
        None,
        metavar="PER_S",
        help="Creates per second for this key (0: no limit; default VEDIT_RATE_LIMIT_PER_S).",
    ),
    data_dir: Path | None = DATA_DIR,
) -> None:
    """Make a key and print it (it is shown only this once). NAME is unique among active
    keys."""
    from vedit.keys import KeyRefused, check_name, create_key

    try:  # before the data folder is made
        check_name(name)
    except KeyRefused as exc:
        raise typer.BadParameter(str(exc), param_hint="--name") from None
    if rate_limit is not None and not rate_limit >= 0:
        raise typer.BadParameter(
            f"{rate_limit:g} is not a rate: 0 (no limit) or more creates per second",
            param_hint="--rate-limit",
        )
    settings = _settings(data_dir)
    _prepare(settings)
    try:
        key, _ = create_key(_sessions(settings), name, rate_limit_per_s=rate_limit)
    except KeyRefused as exc:
        typer.echo(f"vedit: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(key)


def _rate_in_words(per_s: float | None, settings: Settings) -> str:
    """A key's rate limit as `keys list` shows it: ``2.5/s``, ``unlimited`` (0), or
    ``default: 10/s`` (VEDIT_RATE_LIMIT_PER_S, which may be unlimited too)."""
    if per_s is None:
        return f"default: {_rate_in_words(settings.rate_limit_per_s, settings)}"
    return "unlimited" if per_s <= 0 else f"{per_s:g}/s"


@keys_app.command("list", cls=_Command)
def keys_list(data_dir: Path | None = DATA_DIR) -> None:
    """List keys (prefixes only: keys are stored hashed)."""
    import time

    from vedit.keys import list_keys

    settings = _settings(data_dir)
    sessions = _existing_sessions(settings)
    if sessions is None:
        typer.echo(
            f"no keys: there is no database in {settings.data_dir.resolve()} yet "
            "(vedit serve makes it)"
        )
        return
    table = Table("id", "name", "prefix", "created", "rate limit", "state")
    for k in list_keys(sessions):
        table.add_row(
            str(k.id),
            k.name,
            k.prefix + "…",
            time.strftime("%Y-%m-%d %H:%M", time.gmtime(k.created_at)),
            _rate_in_words(k.rate_limit_per_s, settings),
            "revoked" if k.revoked_at else "active",
        )
    # Piped, the table keeps one line per key (rich would wrap it at 80 columns).
    (console if console.is_terminal else Console(width=1000)).print(table)


@keys_app.command("revoke", cls=_Command)
def keys_revoke(
    ref: str = typer.Argument(
        ..., metavar="KEY", help="The key's id or name (as `vedit keys list` shows), or prefix."
    ),
    data_dir: Path | None = DATA_DIR,
) -> None:
    """Revoke one key, by its id, name or prefix."""
    from vedit.keys import KeyNotFound, revoke_key, shown

    settings = _settings(data_dir)
    sessions = _existing_sessions(settings)
    try:
        if sessions is None:
            raise KeyNotFound(
                f"no active key matches {ref!r}: there is no database in "
                f"{settings.data_dir.resolve()} yet"
            )
        row = revoke_key(sessions, ref)
    except KeyNotFound as exc:
        typer.echo(f"vedit: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"revoked {shown(row)}")


@app.command(cls=_Command)
def edit(
    video: Path = typer.Argument(
        ..., metavar="VIDEO", exists=True, dir_okay=False, help="The video file (MP4 or MOV)."
    ),
    reference: Path = typer.Argument(
        ..., metavar="REF", exists=True, dir_okay=False, help="The reference image file."
    ),
    prompt: str = typer.Option(..., "--prompt", "-p", help="What to edit."),
    output: Path = typer.Option(..., "--output", "-o", metavar="OUT.mp4", help="Where to write."),
    resolution: str = typer.Option(
        "720P",
        "--resolution",
        metavar="720P|1080P",
        help="Output tier (720P, the default here, is the faster on a CPU; the API's is 1080P).",
    ),
    seed: int | None = typer.Option(None, "--seed", metavar="N", help="0..2147483647."),
    no_watermark: bool = typer.Option(False, "--no-watermark", help="Leave the mark off."),
    audio: str = typer.Option("auto", "--audio", metavar="auto|origin", help="audio_setting."),
) -> None:
    """Edit local files in this process, with no server (same checks, engine and output)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from vedit.engines.plan import plan_in_words, plan_warning
    from vedit.errors import VeditError
    from vedit.local_edit import edit_files
    from vedit.media.limits import MediaLimits
    from vedit.media.local_files import LocalFileRefused, NeedsConversion, check_local

    logging.basicConfig(level=logging.WARNING, format="%(name)s %(message)s")
    settings = load_settings()
    for path, kind in ((video, "video"), (reference, "image")):
        try:  # a format the API refuses: what it is, what is taken, how to convert it
            check_local(path, kind, MediaLimits.of(settings))
        except NeedsConversion as exc:
            how = cli_client.how_to_convert(str(path), kind, option=None)
            typer.echo(f"vedit: {exc.message}: {how}", err=True)
            raise typer.Exit(2) from None
        except LocalFileRefused:  # said by the edit's own checks, in the API's words
            pass
    progress = Progress(
        TextColumn("editing"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(), console=console, transient=True,
        disable=not console.is_terminal,
    )  # fmt: skip
    with progress:
        bar = progress.add_task("edit", total=100)
        try:
            task = edit_files(
                video, [reference], prompt, output, settings=settings,
                resolution=resolution, watermark=not no_watermark, seed=seed,
                audio_setting=audio,
                on_progress=lambda p: progress.update(bar, completed=p),
            )  # fmt: skip
        except VeditError as exc:
            typer.echo(f"vedit: {exc.message}", err=True)
            raise typer.Exit(2) from None
    if task.edit_plan:
        typer.echo(f"plan: {plan_in_words(task.edit_plan)}")
    if task.status != "succeeded":
        typer.echo(f"vedit: the edit failed: {task.error_code}: {task.error_message}", err=True)
        raise typer.Exit(4)
    warning = plan_warning(task.edit_plan or {})
    if warning:  # the video is made, but not as asked: never a silent success
        typer.echo(warning, err=True)
    result = task.result or {}
    typer.echo(
        f"wrote {output} ({result.get('width')}x{result.get('height')}, "
        f"{result.get('output_video_duration')} s, seed {task.seed}) in "
        f"{result.get('engine_seconds')} s"
    )


cli_client.register(app, _Command)

if __name__ == "__main__":
    app()
