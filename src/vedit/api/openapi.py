"""The OpenAPI document: what FastAPI derives from the routes, plus what it cannot know.

- the create bodies (the routes read raw bytes, so the schemas are added here);
- the error bodies of each dialect, for every error status a route declares, with
  the ``Retry-After`` and ``Allow`` headers where they are sent;
- security per route: a bearer key everywhere but ``/healthz``, the signed file
  downloads, the upload under a DashScope policy, and ``/metrics`` (which takes ``VEDIT_METRICS_TOKEN`` when it is set);
- ``HEAD`` is implied by every ``GET`` (RFC 9110) and not listed twice.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from vedit.api.schemas import CreateRequest, DashScopeCreateRequest
from vedit.api.wire import dialect_of_path
from vedit.config import Settings

ERROR_BODIES = {
    "Error": {
        "type": "object",
        "description": "An error in the seed's (Anyfast's) dialect.",
        "required": ["code", "message", "data"],
        "properties": {
            "code": {"type": "string", "examples": ["invalid_request"]},
            "message": {"type": "string", "description": "Names the field and the value seen."},
            "data": {"type": "null"},
        },
    },
    "DashScopeError": {
        "type": "object",
        "description": "An error in DashScope's dialect.",
        "required": ["code", "message", "request_id"],
        "properties": {
            "code": {"type": "string", "examples": ["InvalidParameter"]},
            "message": {"type": "string", "description": "Names the field and the value seen."},
            "request_id": {"type": "string"},
        },
    },
}
ERROR_HEADERS = {
    405: {"Allow": {"description": "The methods of this path.", "schema": {"type": "string"}}},
    429: {
        "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}},
    },
    503: {
        "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}},
    },
}
PUBLIC_PATHS = ("/healthz", "/v1/files/", "/v1/uploads/")
# Operations on a keyed path that take no key (the signed policy is the credential).
PUBLIC_OPERATIONS = {"uploadUnderPolicy"}


def build_openapi(app: FastAPI, settings: Settings) -> dict[str, Any]:
    """The document served at ``/openapi.json`` (built once per app)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    with warnings.catch_warnings():
        # Each GET route also answers HEAD, which FastAPI documents under the same id; those
        # HEAD operations are dropped below and the ids left are checked to be unique.
        warnings.filterwarnings("ignore", "Duplicate Operation ID", UserWarning)
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
    ids: list[str] = []
    for operations in schema.get("paths", {}).values():
        if "get" in operations:
            operations.pop("head", None)  # implied by GET
        ids += [op["operationId"] for op in operations.values()]
    if len(ids) != len(set(ids)):
        raise RuntimeError(f"duplicate operation ids in the OpenAPI document: {sorted(ids)}")
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in (CreateRequest, DashScopeCreateRequest):
        defs = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(defs.pop("$defs", {}))
        schemas[model.__name__] = defs
    schemas.update(copy.deepcopy(ERROR_BODIES))
    metrics_token = bool(settings.metrics_token.get_secret_value())
    components["securitySchemes"] = {
        "bearerAuth": {"type": "http", "scheme": "bearer", "description": "A vedit API key."}
    }
    if metrics_token:
        components["securitySchemes"]["metricsToken"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "VEDIT_METRICS_TOKEN",
        }
    for path, operations in schema.get("paths", {}).items():
        body = dialect_of_path(path).schema
        for op in operations.values():
            if path == "/metrics":
                op["security"] = [{"metricsToken": []}] if metrics_token else []
            elif path.startswith(PUBLIC_PATHS) or op.get("operationId") in PUBLIC_OPERATIONS:
                op["security"] = []
            else:
                op["security"] = [{"bearerAuth": []}]
            answers = op.setdefault("responses", {})
            answers.setdefault(
                "405", {"description": "Another method than this path's (see `Allow`)"}
            )
            for status, answer in answers.items():
                if status[0] not in "45":
                    continue
                answer["content"] = {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}
                }
                if int(status) in ERROR_HEADERS:
                    answer["headers"] = ERROR_HEADERS[int(status)]
            answers.pop("422", None)  # FastAPI's default; vedit answers 400 instead
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    app.openapi_schema = schema
    return schema
