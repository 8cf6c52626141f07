"""Wire shapes of the create call, and the parsing of a raw body into a valid request.

The pydantic models are the OpenAPI schema (names, enums, defaults and ranges
exactly as the seed document); :func:`parse_create` adds what a schema cannot
say and turns every problem into an :class:`~vedit.errors.InvalidRequest`
whose message names the field and the value seen.
"""

from __future__ import annotations

import json
import unicodedata
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import SkipJsonSchema

from vedit import MODEL_NAME
from vedit.errors import InvalidJson, InvalidRequest, MissingModel, UnknownModel

MAX_URL_LENGTH = 2048
PROMPT_BUDGET = 5000  # DashScope: 2,500 CJK or 5,000 other characters; a CJK character costs 2
SIMPLIFIED_FIELDS = {
    "prompt",
    "video_url",
    "image_url",
    "video",
    "image",
    "reference_image",
    "media",
    "reference_image_url",
    "resolution",
    "watermark",
    "seed",
}


class MediaItem(BaseModel):
    model_config = ConfigDict(strict=True)

    type: Literal["video", "reference_image"] = Field(description="Media type.")
    url: str = Field(description="Public URL of the video or the reference image.")


class CreateInput(BaseModel):
    model_config = ConfigDict(strict=True)

    prompt: str = Field(
        description="What to edit.", examples=["让视频中的角色穿上图片中的条纹毛衣"]
    )
    media: list[MediaItem] = Field(
        min_length=2, max_length=2, description="Exactly 2 items: 1 video + 1 reference image."
    )


class CreateParameters(BaseModel):
    model_config = ConfigDict(strict=True)

    resolution: Literal["720P", "1080P"] = "1080P"
    watermark: bool = True
    seed: Annotated[int, Field(ge=0, le=2147483647)] | SkipJsonSchema[None] = Field(
        None,
        description="Absent: a random seed is drawn (and reported in the query answer).",
        json_schema_extra=lambda schema: schema.pop("default", None),
    )
    audio_setting: Literal["auto", "origin"] = Field(
        "auto", description="DashScope's: auto (the model decides) or origin (keep the input's)."
    )


class CreateRequest(BaseModel):
    """``POST /v1/video/generations``: the seed's native body."""

    model_config = ConfigDict(strict=True)

    model: Literal["happyhorse-1.0-video-edit"] = Field(
        description="Model ID.", json_schema_extra={"enum": [MODEL_NAME], "type": "string"}
    )
    input: CreateInput
    parameters: CreateParameters = Field(default_factory=CreateParameters)


class DashScopeInput(CreateInput):
    media: list[MediaItem] = Field(  # type: ignore[assignment]
        min_length=1, max_length=6, description="One video and 0 to 5 reference images."
    )


class DashScopeCreateRequest(CreateRequest):
    """``POST /api/v1/services/aigc/video-generation/video-synthesis``: DashScope's body."""

    input: DashScopeInput  # type: ignore[assignment]


class CreateResponse(BaseModel):
    id: str
    task_id: str
    object: Literal["video"] = "video"
    model: str
    status: Literal["queued"] = "queued"
    progress: int = 0
    created_at: int


def _is_cjk(ch: str) -> bool:
    return unicodedata.east_asian_width(ch) in ("W", "F")


def truncate_prompt(prompt: str) -> str:
    """The prompt as DashScope uses it: cut past 2,500 CJK / 5,000 other characters."""
    used = 0
    for i, ch in enumerate(prompt):
        used += 2 if _is_cjk(ch) else 1
        if used > PROMPT_BUDGET:
            return prompt[:i]
    return prompt


def _describe(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def parse_create(body: bytes, *, dialect: str = "anyfast") -> CreateRequest:
    """Parse and check a create body; raise an :class:`InvalidRequest` naming the field.

    ``dialect``: ``anyfast`` (the seed: one video and one reference image) or
    ``dashscope`` (one video and 0 to 5 reference images).
    """
    model_class = DashScopeCreateRequest if dialect == "dashscope" else CreateRequest
    refs = (0, 5) if dialect == "dashscope" else (1, 1)
    # 1. JSON, and a JSON object.
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidJson(f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidJson(f"the body must be a JSON object, got {type(data).__name__}")

    # 2. The model, and the native format.
    if "model" not in data or data["model"] in (None, ""):
        raise MissingModel('model is required; use "happyhorse-1.0-video-edit"')
    if data["model"] != MODEL_NAME:
        raise UnknownModel(f'model {_describe(data["model"])} is not supported; use "{MODEL_NAME}"')
    simplified = sorted(SIMPLIFIED_FIELDS & data.keys())
    if simplified:
        raise InvalidRequest(
            f"top-level {', '.join(simplified)} is the simplified format, which is not "
            "supported: the native format is required, with input.prompt and "
            'input.media[] ({"type": "video" | "reference_image", "url": ...})'
        )

    # 3. Types, enums and ranges from the schema.
    try:
        req = model_class.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = _loc(err["loc"])
        if err["type"] == "missing":
            raise InvalidRequest(f"{where} is required") from None
        raise InvalidRequest(
            f"{where}: {err['msg'][0].lower()}{err['msg'][1:]}, got {_describe(err['input'])}"
        ) from None

    # 4. What the schema cannot say.
    if not req.input.prompt.strip():
        raise InvalidRequest("input.prompt must not be empty")
    kinds = [m.type for m in req.input.media]
    if kinds.count("video") != 1 or not refs[0] <= kinds.count("reference_image") <= refs[1]:
        images = "one" if refs == (1, 1) else f"{refs[0]} to {refs[1]}"
        raise InvalidRequest(
            f'input.media must hold exactly one "video" and {images} "reference_image", got '
            f"{_describe(kinds)}"
        )
    for i, item in enumerate(req.input.media):
        check_media_url(item.url, f"input.media[{i}].url")
    return req


def check_media_url(url: str, field: str) -> None:
    """An absolute http(s) URL of at most 2,048 characters."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidRequest(
            f"{field} is {len(url):,} characters long; at most {MAX_URL_LENGTH:,} are accepted"
        )
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or not parts.hostname:
        raise InvalidRequest(f"{field} must be an absolute http or https URL, got {_describe(url)}")
