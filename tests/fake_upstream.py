"""A DashScope-compatible upstream on loopback, written from DashScope's documented behaviour.

``POST /api/v1/services/aigc/video-generation/video-synthesis`` (async only) answers
``{output: {task_id, task_status: PENDING}, request_id}``; ``GET /api/v1/tasks/{id}``
walks the task through the scripted statuses, one per poll (held before the last
until enough tasks were created, or for a while, when the script says so); ``POST
/api/v1/tasks/{id}/cancel`` cancels a PENDING task and refuses others with 400
``UnsupportedOperation``. Errors are ``{code, message, request_id}``. The result is
served from ``/results/{id}.mp4`` behind a link that expires. A :class:`Script`
sets what happens; everything received is recorded for the tests to read.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Script:
    """What the fake upstream does."""

    result: Path  # the MP4 served as every task's result
    statuses: list[str] = field(default_factory=lambda: ["PENDING", "RUNNING", "SUCCEEDED"])
    fail_code: str = "DataInspectionFailed"
    fail_message: str = "the input data may contain inappropriate content"
    create_failures: list[int] = field(default_factory=list)  # answers to the first creates
    get_failures: list[int] = field(default_factory=list)  # answers to the first polls
    refuse_create: tuple[int, str, str] | None = None  # (status, code, message) for every create
    delay_s: float = 0.0  # every answer waits this long
    link_ttl_s: float = 3600.0  # how long a result link works
    retry_after: str | None = None  # the Retry-After of a 429
    # No task takes its last status before this many tasks were created (0: no gate),
    # nor before it is hold_s old: it stays at the status before the last meanwhile.
    hold_until_created: int = 0
    hold_s: float = 0.0


@dataclass
class Seen:
    creates: list[dict[str, Any]] = field(default_factory=list)
    create_headers: list[dict[str, str]] = field(default_factory=list)
    polls: int = 0
    cancels: list[str] = field(default_factory=list)
    downloads: list[int] = field(default_factory=list)  # status of each result download
    in_flight: int = 0  # tasks created and not yet reported ended (SUCCEEDED, FAILED, ...)
    max_in_flight: int = 0
    created_when_first_ended: int | None = None  # creates seen when a task first ended


class FakeUpstream:
    def __init__(self, script: Script, key: str = "sk-upstream-secret") -> None:
        self.script, self.key, self.seen = script, key, Seen()
        self.tasks: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"upstream": self})
        self.httpd = _Server(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1"

    @property
    def hostport(self) -> str:
        return f"127.0.0.1:{self.port}"

    def ended(self, task: dict[str, Any]) -> None:
        """Count a task's end once (under ``lock``)."""
        if task.get("ended"):
            return
        task["ended"] = True
        self.seen.in_flight -= 1
        if self.seen.created_when_first_ended is None:
            self.seen.created_when_first_ended = len(self.seen.creates)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # many followed tasks connect at once

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client gone (a killed worker)
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    upstream: FakeUpstream
    protocol_version = "HTTP/1.1"  # keep-alive, as DashScope's gateway; every answer has a length

    def log_message(self, *args: Any) -> None:
        pass

    def _send(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: str, message: str) -> None:
        headers = {}
        if status == 429 and self.upstream.script.retry_after:
            headers["Retry-After"] = self.upstream.script.retry_after
        self._send(
            status, {"code": code, "message": message, "request_id": uuid.uuid4().hex}, headers
        )

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") != f"Bearer {self.upstream.key}":
            self._error(401, "InvalidApiKey", "Invalid API-key provided.")
            return False
        return True

    def do_POST(self) -> None:
        up, script = self.upstream, self.upstream.script
        time.sleep(script.delay_s)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not self._authorised():
            return
        if self.path.endswith("/video-synthesis"):
            with up.lock:
                up.seen.creates.append(json.loads(raw))
                up.seen.create_headers.append(dict(self.headers))
                failure = script.create_failures.pop(0) if script.create_failures else None
            if self.headers.get("X-DashScope-Async") != "enable":
                return self._error(
                    403, "AccessDenied", "current user api does not support synchronous calls"
                )
            if failure:
                return self._error(
                    failure,
                    "Throttling.RateQuota" if failure == 429 else "InternalError",
                    "try later",
                )
            if script.refuse_create:
                status, code, message = script.refuse_create
                return self._error(status, code, message)
            task_id = uuid.uuid4().hex
            with up.lock:
                up.tasks[task_id] = {"status": "PENDING", "step": 0, "submitted": time.time()}
                up.seen.in_flight += 1
                up.seen.max_in_flight = max(up.seen.max_in_flight, up.seen.in_flight)
            return self._send(
                200,
                {
                    "output": {"task_id": task_id, "task_status": "PENDING"},
                    "request_id": uuid.uuid4().hex,
                },
            )
        if self.path.startswith("/api/v1/tasks/") and self.path.endswith("/cancel"):
            task_id = self.path.split("/")[-2]
            with up.lock:
                up.seen.cancels.append(task_id)
                task = up.tasks.get(task_id)
                if task is None:
                    return self._error(400, "InvalidParameter", "task not found")
                if task["status"] != "PENDING":
                    return self._error(
                        400,
                        "UnsupportedOperation",
                        "Failed to cancel the task, please confirm if the task is in PENDING status.",
                    )
                task["status"] = "CANCELED"
                up.ended(task)
            return self._send(200, {"request_id": uuid.uuid4().hex})
        self._error(404, "NotFound", self.path)

    def do_GET(self) -> None:
        up, script = self.upstream, self.upstream.script
        time.sleep(script.delay_s)
        if self.path.startswith("/results/"):
            return self._result()
        if not self._authorised():
            return
        if not self.path.startswith("/api/v1/tasks/"):
            return self._error(404, "NotFound", self.path)
        task_id = self.path.rsplit("/", 1)[-1]
        with up.lock:
            up.seen.polls += 1
            failure = script.get_failures.pop(0) if script.get_failures else None
            task = up.tasks.get(task_id)
            if failure:
                pass
            elif task is None:
                out: dict[str, Any] = {"task_id": task_id, "task_status": "UNKNOWN"}
            else:
                if task["status"] not in ("CANCELED",):
                    steps = script.statuses
                    step = min(task["step"], len(steps) - 1)
                    held = len(up.seen.creates) < script.hold_until_created or (
                        time.time() - task["submitted"] < script.hold_s
                    )
                    if held and step == len(steps) - 1 and step > 0:
                        step -= 1
                    else:
                        task["step"] += 1
                    task["status"] = steps[step]
                    if task["status"] in ("SUCCEEDED", "FAILED", "UNKNOWN"):
                        up.ended(task)
                out = {"task_id": task_id, "task_status": task["status"]}
                if task["status"] == "SUCCEEDED":  # a link signed afresh at every look
                    expires = time.time() + script.link_ttl_s
                    out["video_url"] = (
                        f"http://{up.hostport}/results/{task_id}.mp4?expires={expires}"
                    )
                if task["status"] == "FAILED":
                    out.update(code=script.fail_code, message=script.fail_message)
        if failure:
            return self._error(
                failure, "Throttling.RateQuota" if failure == 429 else "InternalError", "try later"
            )
        self._send(200, {"request_id": uuid.uuid4().hex, "output": out})

    def _result(self) -> None:
        up = self.upstream
        expires = float(self.path.split("expires=", 1)[1]) if "expires=" in self.path else 0.0
        if time.time() > expires:
            up.seen.downloads.append(403)
            return self._send(403, {"code": "AccessDenied", "message": "Request has expired."})
        data = up.script.result.read_bytes()
        up.seen.downloads.append(200)
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
