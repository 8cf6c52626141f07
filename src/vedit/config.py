"""One Settings object: every knob of vedit, read from ``VEDIT_*`` environment variables.

Nothing else in the package reads the environment. Limits from CONTRACT.md §4
are settings too, each with the contract's value as its default.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

RATE_LIMIT_SCHEMES = ("memory", "redis", "rediss", "redis+unix")
"""The schemes ``VEDIT_RATE_LIMIT_STORAGE`` takes."""


class Settings(BaseSettings):
    """vedit's settings; each field is the env var ``VEDIT_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="VEDIT_", extra="ignore")

    # --- where things live -------------------------------------------------
    data_dir: Path = Field(Path("./data"), description="Database, media and results live here.")
    database_url: str = Field(
        "",
        description="SQLAlchemy URL; empty means SQLite (WAL) at <data_dir>/vedit.db. "
        "PostgreSQL: postgresql://user:password@host:port/db (driver psycopg 3, "
        "pip install 'vedit[scale]').",
    )
    auto_migrate: bool | None = Field(
        None,
        description="Migrate the database to the newest schema when `vedit serve`, `vedit worker` "
        "or `vedit keys create` start. Unset: yes on SQLite, no on any other database, where "
        "`vedit db upgrade` migrates and those commands refuse a schema that is behind.",
    )
    public_base_url: str = Field(
        "", description="Base of result URLs; empty means http://<host>:<port> of `vedit serve`."
    )
    storage: Literal["local", "s3"] = Field(
        "local",
        description="Where results and uploads are kept: `local` (<data_dir>/results, "
        "<data_dir>/uploads) or `s3` (the bucket VEDIT_S3_BUCKET; needs `vedit[scale]`).",
    )
    s3_bucket: str = Field("", description="The bucket of VEDIT_STORAGE=s3.")
    s3_endpoint_url: str = Field(
        "",
        description="The S3 API's URL for an S3-compatible server (SeaweedFS, MinIO, ...); "
        "empty: AWS S3 of VEDIT_S3_REGION. Presigned result URLs name this host, so clients "
        "must reach it (else VEDIT_S3_PROXY=true).",
    )
    s3_region: str = Field(
        "", description="The bucket's region; empty: the AWS chain's (AWS_REGION, ~/.aws/config)."
    )
    s3_prefix: str = Field(
        "", description="Key prefix of every object vedit writes (`vedit/` -> vedit/results/...)."
    )
    s3_proxy: bool = Field(
        False,
        description="Serve results and uploads through vedit's own signed routes (the API "
        "streams the object, with Range) instead of presigned URLs of the bucket: for buckets "
        "that clients cannot reach.",
    )
    s3_multipart_threshold_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1,
        description="Files at least this large are written to the bucket by multipart upload.",
    )
    s3_multipart_chunk_bytes: int = Field(
        8 * 1024 * 1024,
        ge=5 * 1024 * 1024,
        description="Part size of a multipart upload (S3's minimum is 5 MiB).",
    )

    # --- dispatch: how a task id reaches a worker ------------------------------
    dispatch: Literal["local", "celery"] = Field(
        "local",
        description="local: worker processes inside `vedit serve` (and `vedit worker`) claim "
        "tasks from the database; celery: `vedit serve` sends task ids over "
        "VEDIT_BROKER_URL and `vedit worker` runs a Celery worker on any host "
        "(pip install 'vedit[scale]').",
    )
    broker_url: str = Field(
        "",
        description="The Celery broker when VEDIT_DISPATCH=celery: redis://host:6379/1 "
        "(tested), or amqp://user:password@host:5672// (RabbitMQ; not tested).",
    )
    broker_visibility_timeout_s: float | None = Field(
        None,
        description="Seconds a message taken by a worker may stay unacknowledged before a "
        "Redis broker hands it out again; unset: derived from the longest a task may take "
        "(see Settings.visibility_timeout_s; 4320 s at the defaults). A second delivery is "
        "harmless: the task row's claim lets one worker run a task at a time.",
    )
    dispatch_resend_after_s: float = Field(
        15.0,
        description="VEDIT_DISPATCH=celery: a task queued this long while the broker holds "
        "fewer messages than there are queued tasks (a message lost between the database's "
        "commit and the broker) is sent again by the janitors.",
    )

    # --- workers -----------------------------------------------------------
    workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        description="Worker processes started by `vedit serve` (0: API only); unset: one per "
        "CPU, and with engine vace 1 (one model on the GPU). With VEDIT_DISPATCH=celery: "
        "`vedit worker`'s pool processes.",
    )
    worker_start_timeout_s: float = Field(
        120.0,
        description="`vedit serve` and `vedit worker` wait this long for a worker to load its "
        "engine, then exit non-zero with the reason.",
    )
    worker_restart_backoff_s: float = Field(
        1.0,
        description="Wait before a dead worker is started again; doubles with each death in a row.",
    )
    worker_restart_backoff_max_s: float = Field(
        60.0,
        description="Longest wait between restarts; a worker that stays up this long counts "
        "its deaths afresh.",
    )
    # --- engines ---------------------------------------------------------------
    engine: str = Field(
        "classic",
        description="Engine that edits the videos: classic (CPU), vace (Wan2.1 VACE on a GPU, "
        "docs/vace.md) or dashscope (the relay to the upstream model).",
    )
    models_dir: Path | None = Field(
        None,
        description="Folder of model files (.tflite); unset: those the mediapipe wheel ships.",
    )
    # --- the open model (``VEDIT_ENGINE=vace``, pip install 'vedit[vace]') ----------
    vace_model_dir: Path | None = Field(
        None,
        description="Folder of a diffusers-format Wan2.1-VACE model (1.3B or 14B) for engine "
        "vace; weights are read from here only, never downloaded.",
    )
    vace_device: str = Field(
        "", description="Torch device of engine vace (cuda, cuda:1, cpu); empty: cuda if any."
    )
    vace_dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", description="Weights' type; auto: bfloat16 on a GPU, float32 on the CPU."
    )
    vace_offload: Literal["none", "model", "sequential"] = Field(
        "none",
        description="CPU offloading of engine vace: model (whole models move to the GPU in "
        "turn: less memory, a little slower) or sequential (layer by layer: least memory, "
        "much slower).",
    )
    vace_size: str = Field(
        "480p",
        description="Engine vace's working size: the pixel area of 480p (832x480) or 720p "
        "(1280x720), or WxH, at the source's aspect ratio (sides multiples of 16).",
    )
    vace_window: int = Field(
        81, gt=0, description="Frames (16 fps) the model makes at once: 4k+1, 81 = 5 s."
    )
    vace_overlap: int = Field(
        16,
        ge=0,
        description="Frames each window shares with the one before: given to the model as "
        "already made, then blended, so windows join without a seam.",
    )
    vace_steps: int = Field(50, gt=0, description="Denoising steps per window.")
    vace_guidance: float = Field(5.0, ge=0, description="Classifier-free guidance scale.")
    vace_flow_shift: float | None = Field(
        None, description="The scheduler's flow shift; unset: 3.0 at 480p, 5.0 at 720p."
    )

    # --- the relay engine (``VEDIT_ENGINE=dashscope``) ------------------------
    upstream_base_url: str = Field(
        "https://dashscope.aliyuncs.com/api/v1",
        description="The DashScope-compatible API the relay engine submits to.",
    )
    upstream_api_key: SecretStr = Field(
        SecretStr(""), description="The upstream's key; never logged or shown in task data."
    )
    upstream_poll_s: float = Field(
        2.0, description="First wait between polls of an upstream task (doubling, with jitter)."
    )
    upstream_poll_max_s: float = Field(15.0, description="Longest wait between polls.")
    upstream_deadline_s: float = Field(
        1800.0, description="An upstream task (retries included) that takes longer fails."
    )
    relay_concurrency: int = Field(
        500,
        gt=0,
        description="Upstream tasks one worker process follows at once (engine dashscope): it "
        "claims that many and follows each as a coroutine, instead of one task per process.",
    )
    # --- tasks: leases, retries, retention -------------------------------------
    task_lease_s: float = Field(
        30.0, description="A running task whose worker sent no heartbeat for this long is lost."
    )
    task_max_attempts: int = Field(
        2, description="Runs a task may start; a lost worker's task is retried until then."
    )
    task_ttl_s: float = Field(86400.0, description="Tasks and their files are kept this long.")
    janitor_interval_s: float = Field(
        1.0, description="How often lost and expired tasks are swept."
    )

    # --- API keys and limits ------------------------------------------------
    api_key: str = Field("", description="Key added at start-up when the key store is empty.")
    rate_limit_per_s: float = Field(10.0, description="Creates per second per key (0: no limit).")
    rate_limit_burst: int = Field(20, description="Creates a key may send at once.")
    rate_limit_storage: str = Field(
        "memory://",
        description="Where the rate-limit counters live: memory:// (this process's own) or "
        "redis://host:port/db (shared by every API process using that Redis and database; "
        "pip install 'vedit[scale]').",
    )
    max_body_bytes: int = Field(1024 * 1024, description="Larger request bodies get 413.")
    signing_secret: str = Field(
        "",
        description="HMAC secret for result URLs; empty: made once and kept in "
        "<data_dir>/signing.key (mode 0600). Every host of one deployment needs the same.",
    )
    result_url_ttl_s: float = Field(86400.0, description="How long a signed result URL is valid.")
    upload_policy_ttl_s: float = Field(
        600.0,
        description="How long an upload policy of DashScope's flow (GET /api/v1/uploads"
        "?action=getPolicy) may be used.",
    )
    upload_quota_bytes: int = Field(
        2_000_000_000,
        description="Bytes of live uploads one key may hold; one more upload is a 413 "
        "upload_quota_exceeded (0: no quota).",
    )
    upload_min_rate_bps: int = Field(
        64 * 1024,
        gt=0,
        description="An upload's body (POST /v1/uploads, POST /api/v1/uploads) must arrive at "
        "this many bytes per second on average, counted from its headers after "
        "VEDIT_UPLOAD_RATE_GRACE_S; a slower one is answered 408 and closed (a 100 MB file at "
        "the default takes at most about 26 minutes). Other bodies have VEDIT_HTTP_BODY_TIMEOUT_S.",
    )
    upload_rate_grace_s: float = Field(
        5.0,
        ge=0,
        description="Seconds an upload's body is given before VEDIT_UPLOAD_MIN_RATE_BPS counts "
        "(a client's start, a slow first round trip).",
    )
    metrics_token: SecretStr = Field(
        SecretStr(""),
        description="Bearer token that /metrics asks for, from any address; empty: /metrics "
        "answers loopback clients only (unless VEDIT_METRICS_PUBLIC=true).",
    )
    metrics_public: bool = Field(
        False,
        description="Serve /metrics to any client without a token (when VEDIT_METRICS_TOKEN is "
        "empty). Off: only loopback clients (127.0.0.0/8, ::1) get it, others a 403.",
    )

    # --- HTTP server ----------------------------------------------------------
    http_max_connections: int = Field(
        1000,
        gt=0,
        description="Open client connections per `vedit serve` process; one more is answered 503 "
        "and closed at once. Lowered at start-up if the process's file-descriptor limit is short.",
    )
    http_max_connections_per_client: int = Field(
        100,
        ge=0,
        description="Open connections per client IP address (IPv6: per /64); one more is answered "
        "503 and closed at once (0: no per-client cap). Behind a reverse proxy the proxy is the "
        "one client: set 0 there and cap clients at the proxy (docs/deploy.md).",
    )
    http_max_upload_connections: int = Field(
        100,
        gt=0,
        description="Connections per `vedit serve` process that may be in an upload "
        "(POST /v1/uploads, POST /api/v1/uploads: the routes that read bodies of up to 100 MB "
        "before, or without, a bearer key); one more upload is answered 503 at its headers and "
        "closed. The other VEDIT_HTTP_MAX_CONNECTIONS minus these stay for creates, queries "
        "and downloads.",
    )
    http_max_header_bytes: int = Field(
        16 * 1024,
        gt=0,
        description="Request line plus headers, in bytes; a larger head is answered 431.",
    )
    http_max_headers: int = Field(
        100, gt=0, description="Header fields per request; more are answered 431."
    )
    http_header_timeout_s: float = Field(
        20.0,
        gt=0,
        description="Time for the request line and headers to arrive, from the connection's "
        "opening or the request's first byte: a connection that sent nothing is closed, a "
        "partial request is answered 408.",
    )
    http_body_timeout_s: float = Field(
        60.0,
        gt=0,
        description="Time for the body to arrive once the headers are in; then 408.",
    )
    http_keepalive_s: float = Field(
        5.0, gt=0, description="An idle keep-alive connection is closed after this long."
    )

    # --- media intake -------------------------------------------------------
    media_allow: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated host:port pairs fetched even though they are not public "
        "(local use, tests; also `vedit serve --media-allow`).",
    )
    media_connect_timeout_s: float = Field(
        10.0, description="Seconds to connect to a media URL's host."
    )
    media_read_timeout_s: float = Field(
        30.0, description="Seconds a media download may wait for its next bytes."
    )
    media_total_timeout_s: float = Field(
        120.0, description="Seconds a whole media download may take, redirects included."
    )
    media_max_redirects: int = Field(
        3, description="Redirects followed per media URL, each checked as the first URL is."
    )
    video_max_bytes: int = Field(
        100 * 1000 * 1000,
        description="Largest video, in bytes: a download stops at the first byte over, an "
        "upload is a 413.",
    )
    image_max_bytes: int = Field(
        10 * 1000 * 1000,
        description="Largest reference image, in bytes: a download stops at the first byte "
        "over, an upload is a 413.",
    )

    video_min_duration_s: float = Field(3.0, description="Shortest video accepted, in seconds.")
    video_max_duration_s: float = Field(
        60.0,
        description="Longest video accepted, in seconds (only the first "
        "VEDIT_OUTPUT_MAX_DURATION_S are edited).",
    )
    video_min_fps: float = Field(8.0, description="The video's frame rate must be above this.")
    video_min_short_side: int = Field(
        360, description="The video's short side must be at least this many pixels."
    )
    video_max_long_side: int = Field(
        4096, description="The video's long side must be at most this many pixels."
    )
    video_max_aspect: float = Field(8.0, description="Long side / short side at most.")
    image_min_side: int = Field(
        300, description="Each side of the reference image must be at least this many pixels."
    )
    image_max_aspect: float = Field(2.5, description="Long side / short side at most.")
    image_max_pixels: int = Field(
        36_000_000, description="Images with more pixels are refused (decompression bombs)."
    )

    # --- output --------------------------------------------------------------
    output_max_duration_s: float = Field(15.0, description="Only the first seconds are edited.")
    output_fps: int = Field(24, description="The results' constant frame rate.")
    x264_preset: str = Field(
        "veryfast", description="libx264 preset of the output stage (speed against file size)."
    )
    x264_crf: int = Field(
        20, description="libx264 constant rate factor of the output stage (lower: better, larger)."
    )
    x264_params: str = Field(
        "mbtree=0",
        description="Extra libx264 parameters. x264's macroblock tree makes its output vary from "
        "run to run in a busy process; it is off so that one seed gives identical bytes.",
    )
    x264_threads: int = Field(
        0,
        description="libx264 threads; 0: as many as CPUs. Fix it for identical bytes across hosts.",
    )

    @staticmethod
    def split_allow(value: str) -> list[str]:
        """``"a:1, b:2"`` -> ``["a:1", "b:2"]`` (``VEDIT_MEDIA_ALLOW``, ``--media-allow``)."""
        return [v.strip() for v in value.split(",") if v.strip()]

    @field_validator("media_allow", mode="before")
    @classmethod
    def _split_allow(cls, value: object) -> object:
        return cls.split_allow(value) if isinstance(value, str) else value

    @field_validator("rate_limit_storage")
    @classmethod
    def _check_rate_limit_storage(cls, value: str) -> str:
        scheme = value.partition("://")[0].lower()
        if "://" not in value or scheme not in RATE_LIMIT_SCHEMES:
            raise ValueError(
                f"VEDIT_RATE_LIMIT_STORAGE is {value!r}; it must be memory:// or "
                "redis://host:port/db (also rediss://, redis+unix://)"
            )
        return value

    @model_validator(mode="after")
    def _one_model_per_gpu(self) -> Settings:
        """Engine vace holds a model on the GPU in each worker: one worker unless asked."""
        if self.engine == "vace" and "workers" not in self.model_fields_set:
            self.workers = 1
        return self

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL: ``database_url`` (``postgresql://`` and ``postgres://`` mean
        psycopg 3: ``postgresql+psycopg://``), or SQLite in the data dir."""
        url = self.database_url
        if not url:
            return f"sqlite:///{(self.data_dir / 'vedit.db').resolve()}"
        for plain in ("postgresql://", "postgres://"):
            if url.startswith(plain):
                return "postgresql+psycopg://" + url[len(plain) :]
        return url

    @property
    def visibility_timeout_s(self) -> float:
        """How long a broker message may stay unacknowledged (``broker_visibility_timeout_s``,
        or twice the longest a task may take: the fetches at their total timeout plus the
        upstream's deadline, at least an hour). Redelivery before then would only be wasted:
        the running task's claim and heartbeat keep the second worker off it."""
        if self.broker_visibility_timeout_s is not None:
            return self.broker_visibility_timeout_s
        longest = 3 * self.media_total_timeout_s + self.upstream_deadline_s
        return max(3600.0, 2 * longest)

    @property
    def upload_longest_s(self) -> float:
        """The longest an upload's body may take: the grace, then the largest file (and its
        form, at most 1 MiB more) at ``upload_min_rate_bps``."""
        largest = max(self.video_max_bytes, self.image_max_bytes) + 1024 * 1024
        return self.upload_rate_grace_s + largest / self.upload_min_rate_bps

    @property
    def migrates_on_start(self) -> bool:
        """``auto_migrate``, or when unset: SQLite only."""
        if self.auto_migrate is not None:
            return self.auto_migrate
        return self.resolved_database_url.startswith("sqlite")

    @property
    def results_dir(self) -> Path:
        return self.data_dir / "results"

    @property
    def work_dir(self) -> Path:
        return self.data_dir / "work"

    @property
    def uploads_dir(self) -> Path:
        return self.data_dir / "uploads"

    def ensure_dirs(self) -> None:
        for path in (self.data_dir, self.results_dir, self.work_dir, self.uploads_dir):
            path.mkdir(parents=True, exist_ok=True)
