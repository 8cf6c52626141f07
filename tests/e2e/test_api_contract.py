"""The create and query calls over real HTTP: answers, every refusal, keys, limits, OpenAPI."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time

import pytest

from conftest import MODEL, body

# Never fetched: the servers in this module run no workers.
VIDEO, IMAGE = "https://example.com/source.mp4", "https://example.com/cloth.webp"


def valid() -> dict:
    return body(VIDEO, IMAGE, "让视频中的角色穿上图片中的条纹毛衣")


def with_(path: str, value: object) -> dict:
    b = valid()
    node = b
    keys = path.split(".")
    for k in keys[:-1]:
        node = node.setdefault(k, {})
    if value is _DEL:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value
    return b


_DEL = object()


@pytest.fixture(scope="module")
def server(api_server):
    return api_server


def test_create_answers_at_once_with_a_queued_task(server) -> None:
    # The media are never touched at create time: example.com is not reachable from here.
    r = server.create(valid())
    assert r.status_code == 200
    d = r.json()
    assert set(d) == {"id", "task_id", "object", "model", "status", "progress", "created_at"}
    assert d["id"] == d["task_id"] and d["task_id"].startswith("asyntask_")
    assert len(d["task_id"]) == len("asyntask_") + 32 and d["task_id"][9:].isalnum()
    assert d["object"] == "video" and d["model"] == MODEL
    assert d["status"] == "queued" and d["progress"] == 0
    assert abs(d["created_at"] - time.time()) < 10


def test_defaults_are_the_seeds(server) -> None:
    tid = server.create(valid()).json()["task_id"]
    params = server.query(tid).json()["data"]["data"]["parameters"]
    assert params["resolution"] == "1080P" and params["watermark"] is True
    assert params["audio_setting"] == "auto" and 0 <= params["seed"] <= 2147483647


@pytest.mark.parametrize(
    ("payload", "code", "needle"),
    [
        (
            {"model": MODEL, "prompt": "x", "video_url": VIDEO, "image_url": IMAGE},
            "invalid_request",
            "native format is required",
        ),
        (with_("model", _DEL), "missing_model", "model is required"),
        (with_("model", "wan2.1-vace"), "model_not_supported", "wan2.1-vace"),
        (with_("input.prompt", _DEL), "invalid_request", "input.prompt is required"),
        (with_("input.prompt", ""), "invalid_request", "input.prompt must not be empty"),
        (with_("input.prompt", "   "), "invalid_request", "input.prompt must not be empty"),
        (with_("input.prompt", 42), "invalid_request", "input.prompt"),
        (
            with_("input.media", [{"type": "video", "url": VIDEO}]),
            "invalid_request",
            "input.media must hold one video and one reference_image; got only a video",
        ),
        (
            with_(
                "input.media", [{"type": "video", "url": VIDEO}, {"type": "video", "url": VIDEO}]
            ),
            "invalid_request",
            "input.media must hold one video and one reference_image; got only 2 videos",
        ),
        (
            with_("input.media", [{"type": "reference_image", "url": IMAGE}] * 2),
            "invalid_request",
            "got only 2 reference_images",
        ),
        (
            with_(
                "input.media", [{"type": "video", "url": VIDEO}, {"type": "audio", "url": IMAGE}]
            ),
            "invalid_request",
            "input.media[1].type",
        ),
        (
            with_(
                "input.media",
                [
                    {"type": "video", "url": VIDEO},
                    {"type": "reference_image", "url": IMAGE},
                    {"type": "video", "url": VIDEO},
                ],
            ),
            "invalid_request",
            "input.media",
        ),
        (
            with_("input.media", [{"type": "video"}, {"type": "reference_image", "url": IMAGE}]),
            "invalid_request",
            "input.media[0].url is required",
        ),
        (
            with_(
                "input.media",
                [
                    {"type": "video", "url": "ftp://x/y.mp4"},
                    {"type": "reference_image", "url": IMAGE},
                ],
            ),
            "invalid_request",
            'input.media[0].url must be an absolute http or https URL: got "ftp://x/y.mp4"',
        ),
        (
            with_(
                "input.media",
                [
                    {"type": "video", "url": "/local/file.mp4"},
                    {"type": "reference_image", "url": IMAGE},
                ],
            ),
            "invalid_request",
            "input.media[0].url",
        ),
        (
            with_(
                "input.media",
                [
                    {"type": "video", "url": VIDEO},
                    {"type": "reference_image", "url": "https://e.com/" + "a" * 2040},
                ],
            ),
            "invalid_request",
            "input.media[1].url is 2,054 characters long; at most 2,048",
        ),
        (
            with_("parameters.resolution", "480P"),
            "invalid_request",
            'parameters.resolution must be "720P" or "1080P", got "480P"',
        ),
        (with_("parameters.resolution", "720p"), "invalid_request", "parameters.resolution"),
        (with_("parameters.watermark", "true"), "invalid_request", "parameters.watermark"),
        (with_("parameters.watermark", 1), "invalid_request", "parameters.watermark"),
        (with_("parameters.seed", True), "invalid_request", "parameters.seed"),
        (
            with_("parameters.seed", -1),
            "invalid_request",
            "parameters.seed must be an integer 0..2147483647, got -1",
        ),
        (with_("parameters.seed", 2147483648), "invalid_request", "parameters.seed"),
        (with_("parameters.seed", 1.5), "invalid_request", "got 1.5"),
        (with_("parameters.seed", "42"), "invalid_request", "parameters.seed"),
        (with_("parameters.audio_setting", "none"), "invalid_request", "parameters.audio_setting"),
        (with_("parameters", "720P"), "invalid_request", "parameters"),
        ([valid()], "invalid_json", "JSON object"),
    ],
)
def test_bad_bodies_are_refused_naming_the_field(server, payload, code, needle) -> None:
    r = server.create(payload)
    assert r.status_code == 400, r.text
    d = r.json()
    assert d["code"] == code and d["data"] is None
    assert needle in d["message"], d["message"]


def test_malformed_json_and_non_json_are_refused(server) -> None:
    for raw in (b'{"model": ', b"model=happyhorse", b"\xff\xfe\x00"):
        r = server.client.post("/v1/video/generations", content=raw, headers=server.headers())
        assert r.status_code == 400 and r.json()["code"] == "invalid_json", r.text


def test_the_boundary_values_are_accepted(server) -> None:
    for seed in (0, 2147483647):
        assert server.create(with_("parameters.seed", seed)).status_code == 200
    url = "https://e.com/" + "a" * (2048 - len("https://e.com/"))
    b = valid()
    b["input"]["media"][1]["url"] = url
    assert server.create(b).status_code == 200


def test_media_order_is_free(server) -> None:
    b = valid()
    b["input"]["media"].reverse()
    assert server.create(b).status_code == 200


def test_bodies_over_one_mebibyte_get_413(server) -> None:
    big = valid()
    big["input"]["prompt"] = "x" * (1024 * 1024)
    r = server.create(big)
    assert r.status_code == 413 and r.json()["code"] == "request_too_large"
    # Without Content-Length (chunked), the count is made on the bytes read.
    chunks = iter([json.dumps(big).encode()[i : i + 65536] for i in range(0, 1100000, 65536)])
    r = server.client.post("/v1/video/generations", content=chunks, headers=server.headers())
    assert r.status_code == 413


def test_long_prompts_are_truncated_and_the_original_kept(server) -> None:
    for prompt, kept in (("字" * 3000, 2500), ("w" * 6000, 5000), ("字" * 2000 + "w" * 2000, 3000)):
        b = valid()
        b["input"]["prompt"] = prompt
        tid = server.create(b).json()["task_id"]
        assert server.query(tid).json()["data"]["data"]["output"]["orig_prompt"] == prompt
        stored = server.db("select prompt from tasks where id = ?", tid)[0][0]
        assert len(stored) == kept and prompt.startswith(stored)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer",
        "Bearer  x",
        "Basic dXNlcjpwYXNz",
        "Bearer short",
        "Bearer vk-unknownkey00000000",
        "Token " + "vk-testkey0000000000000000000000000000000000",
    ],
)
def test_bad_keys_get_401(server, header) -> None:
    headers = {"Authorization": header} if header is not None else {}
    r = server.client.post("/v1/video/generations", json=valid(), headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "invalid_api_key", r.text
    r = server.client.get("/v1/video/generations/asyntask_x", headers=headers)
    assert r.status_code == 401


def _cli(server, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "vedit.cli", *args],
        env=server.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_keys_are_created_listed_revoked_and_isolated(server) -> None:
    other = _cli(server, "keys", "create", "--name", "other-app").strip()
    assert other.startswith("vk-")
    listing = _cli(server, "keys", "list")
    assert "other-app" in listing and other not in listing  # only prefixes are shown
    stored = server.db("select key_hash from api_keys where name = 'other-app'")[0][0]
    assert other not in stored and len(stored) == 64  # hashed

    mine = server.create(valid()).json()["task_id"]
    theirs = server.create(valid(), key=other)
    assert theirs.status_code == 200
    # Another key's task is 404, exactly like an unknown one.
    r = server.query(mine, key=other)
    assert r.status_code == 404 and r.json()["code"] == "task_not_exist"
    assert server.query(theirs.json()["task_id"], key=other).status_code == 200

    assert "revoked key " in _cli(server, "keys", "revoke", "other-app")
    time.sleep(1.2)  # the API caches key look-ups for up to one second
    assert server.create(valid(), key=other).status_code == 401


def test_unknown_task_is_404(server) -> None:
    for tid in ("asyntask_" + "a" * 32, "nope"):
        r = server.query(tid)
        assert r.status_code == 404
        assert r.json() == {
            "code": "task_not_exist",
            "message": f"task {tid} does not exist",
            "data": None,
        }


def test_rate_limit_answers_429_with_retry_after(make_server) -> None:
    srv = make_server({"VEDIT_RATE_LIMIT_PER_S": "2", "VEDIT_RATE_LIMIT_BURST": "4"}, workers=0)
    codes = [srv.create(valid()).status_code for _ in range(8)]
    assert codes[:4] == [200] * 4 and 429 in codes[4:]
    r = srv.create(valid())
    assert r.status_code == 429 and r.json()["code"] == "rate_limit_exceeded"
    assert int(r.headers["Retry-After"]) >= 1
    time.sleep(int(r.headers["Retry-After"]) + 0.1)
    assert srv.create(valid()).status_code == 200
    # A key made without a limit is never throttled.
    free = _cli(srv, "keys", "create", "--name", "bench", "--rate-limit", "0").strip()
    assert all(srv.create(valid(), key=free).status_code == 200 for _ in range(30))


def test_openapi_create_schema_matches_the_seed(server) -> None:
    spec = server.client.get("/openapi.json").json()
    op = spec["paths"]["/v1/video/generations"]["post"]
    assert op["operationId"] == "createHappyhorse10VideoEdit"
    schemas = spec["components"]["schemas"]
    req = schemas["CreateRequest"]
    assert set(req["required"]) == {"model", "input"}
    assert req["properties"]["model"]["enum"] == [MODEL]
    inp = schemas["CreateInput"]
    assert set(inp["required"]) == {"prompt", "media"}
    media = inp["properties"]["media"]
    assert media["minItems"] == 2 and media["maxItems"] == 2
    item = schemas["MediaItem"]
    assert item["properties"]["type"]["enum"] == ["video", "reference_image"]
    assert set(item["required"]) == {"type", "url"}
    params = schemas["CreateParameters"]["properties"]
    assert params["resolution"]["enum"] == ["720P", "1080P"]
    assert params["resolution"]["default"] == "1080P"
    assert params["watermark"]["type"] == "boolean" and params["watermark"]["default"] is True
    seed = next(s for s in params["seed"]["anyOf"] if s.get("type") == "integer")
    assert seed["minimum"] == 0 and seed["maximum"] == 2147483647
    assert {"type": "null"} in params["seed"]["anyOf"]  # null: a seed is drawn, as when absent
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    url = item["properties"]["url"]
    assert url["format"] == "iri" and url["maxLength"] == 2048


def test_openapi_tells_the_truth_about_security_headers_and_errors(server) -> None:
    spec = server.client.get("/openapi.json").json()
    paths = spec["paths"]
    assert "security" not in spec  # per route
    for path, ops in paths.items():
        for method, op in ops.items():
            public = (
                path in ("/healthz", "/metrics")
                or path.startswith(("/v1/files/", "/v1/uploads/"))  # signed links
                or (path, method) == ("/api/v1/uploads", "post")  # the signed policy is the key
            )
            assert op["security"] == ([] if public else [{"bearerAuth": []}]), (path, method)
            assert "405" in op["responses"] and "Allow" in op["responses"]["405"]["headers"]
            for status, answer in op["responses"].items():
                if status[0] in "45":
                    ref = answer["content"]["application/json"]["schema"]["$ref"]
                    dialect = "DashScopeError" if path.startswith("/api/v1/") else "Error"
                    assert ref == f"#/components/schemas/{dialect}", (path, status)
            assert "head" not in ops  # implied by GET
    create = paths["/v1/video/generations"]["post"]["responses"]
    assert {"400", "401", "413", "429"} <= set(create) and "Retry-After" in create["429"]["headers"]
    ds = paths["/api/v1/services/aigc/video-generation/video-synthesis"]["post"]
    (header,) = [p for p in ds["parameters"] if p["in"] == "header"]
    assert header["name"] == "X-DashScope-Async" and header["required"] is True
    assert header["schema"]["enum"] == ["enable"]
    ref = ds["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    media = spec["components"]["schemas"]["DashScopeInput"]["properties"]["media"]
    assert ref.endswith("/DashScopeCreateRequest") and media["maxItems"] == 6
    assert media["minContains"] == media["maxContains"] == 1
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert "404" in paths["/v1/video/generations/{task_id}"]["get"]["responses"]
    assert "403" in paths["/v1/files/{name}"]["get"]["responses"]


def test_docs_work_offline(server) -> None:
    html = server.client.get("/docs").text
    assets = [a for a in html.split('"') if a.startswith(("http://", "https://", "/docs/"))]
    assert assets and all(a.startswith("/docs/assets/") for a in assets), assets
    for asset in assets:
        r = server.client.get(asset)
        assert r.status_code == 200 and len(r.content) > 500, asset


def test_metrics_may_ask_for_a_token(make_server) -> None:
    srv = make_server({"VEDIT_METRICS_TOKEN": "s3cret-metrics"}, workers=0)
    assert srv.client.get("/metrics").status_code == 401
    assert srv.client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    ok = srv.client.get("/metrics", headers={"Authorization": "Bearer s3cret-metrics"})
    assert ok.status_code == 200 and "vedit_tasks" in ok.text
    op = srv.client.get("/openapi.json").json()["paths"]["/metrics"]["get"]
    assert op["security"] == [{"metricsToken": []}]


def test_health_and_metrics(server) -> None:
    assert server.client.get("/healthz").json()["status"] == "ok"
    server.create(valid())
    text = server.client.get("/metrics").text
    assert 'vedit_http_request_seconds_count{method="POST",route="/v1/video/generations"' in text
    assert 'vedit_tasks{status="queued"}' in text
    assert "vedit_engine_seconds_per_video_second" in text


def test_query_answer_while_queued(make_server) -> None:
    srv = make_server(workers=0)
    tid = srv.create(valid()).json()["task_id"]
    d = srv.query(tid).json()
    assert d["code"] == "success" and d["message"] == ""
    data = d["data"]
    assert data["status"] == "QUEUED" and data["progress"] == "0%" and data["action"] == "generate"
    assert data["result_url"] == "" and data["fail_reason"] == "" and data["start_time"] == 0
    out = data["data"]["output"]
    assert out["task_status"] == "PENDING" and out["task_id"] == tid
    assert out["orig_prompt"] == "让视频中的角色穿上图片中的条纹毛衣"
    assert "usage" not in data["data"] and "edit_plan" not in out  # planned when it runs
    assert copy.deepcopy(d) == srv.query(tid).json()
