"""Wire shapes of the create call, and the parsing of a raw body into a valid request.

The pydantic models are the OpenAPI schema (names, enums, defaults and ranges
exactly as the seed document, and the rules vedit adds: the URL's form, the
prompt's characters, one video and one reference image). :func:`parse_create`
enforces all of it and turns every problem into an
:class:`~vedit.errors.InvalidRequest` whose message names the field, states the
rule and shows the value seen, escaped — in the API's own words, not the
validator's.
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vedit import MODEL_NAME
from vedit.errors import InvalidJson, InvalidRequest, MissingModel, UnknownModel
from vedit.media.urls import MAX_URL_LENGTH, BadMediaUrl, ascii_media_url, escape_invisible

MAX_JSON_DEPTH = 16  # a create body is 4 levels deep
MAX_NUMBER_DIGITS = 64  # longer JSON numbers are never a value of this API
PROMPT_BUDGET = 5000  # DashScope: 2,500 CJK or 5,000 other characters; a CJK character costs 2
SEED_MAX = 2147483647
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

# Characters no field may hold: C0 and C1 controls (the prompt may hold tab, LF and CR)
# and lone surrogates (which JSON's \ud800 escapes can smuggle in).
_FORBIDDEN = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_BAD_IN_PROMPT = re.compile(f"[{_FORBIDDEN}\\ud800-\\udfff]")
_BAD_ANYWHERE = re.compile(f"[{_FORBIDDEN}\\t\\n\\r\\ud800-\\udfff]")
# JSON Schema's (ECMA-262's) whitespace, spelled out so the schema and the check agree.
_SPACE = r"\t\n\x0b\x0c\r \xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_SPACE_CHARS = "\t\n\x0b\x0c\r \xa0\u1680\u2028\u2029\u202f\u205f\u3000\ufeff" + "".join(
    map(chr, range(0x2000, 0x200B))
)
PROMPT_PATTERN = f"^[^{_FORBIDDEN}]*[^{_SPACE}{_FORBIDDEN}][^{_FORBIDDEN}]*$"
URL_PATTERN = "^([Hh][Tt][Tt][Pp][Ss]?://[^@/?#]+([/?#].*)?|[Oo][Ss][Ss]://.+)$"

# The rule of each field, as a client reads it: "<field> must be <rule>, got <value>".
RULES = {
    "body": "a JSON object",
    "model": f'"{MODEL_NAME}"',
    "input": "an object with prompt and media",
    "input.prompt": "a non-empty string",
    "input.media": "a list of {type, url} objects",
    "input.media[]": "an object {type, url}",
    "input.media[].type": '"video" or "reference_image"',
    "input.media[].url": f"an absolute http or https URL (or an oss:// upload) of at most "
    f"{MAX_URL_LENGTH:,} characters",
    "parameters": "an object",
    "parameters.resolution": '"720P" or "1080P"',
    "parameters.watermark": "a boolean (true or false)",
    "parameters.seed": f"an integer 0..{SEED_MAX}",
    "parameters.audio_setting": '"auto" or "origin"',
}


def _media_items(video_only: bool) -> dict[str, Any]:
    kinds = ["video"] if video_only else ["reference_image"]
    return {"properties": {"type": {"enum": kinds}}, "required": ["type"]}


class MediaItem(BaseModel):
    model_config = ConfigDict(strict=True)

    type: Literal["video", "reference_image"] = Field(description="Media type.")
    url: str = Field(
        description="Public http(s) URL of the video or the reference image, or the `url` of "
        "an upload (`POST /v1/uploads`), or `oss://<key>` of DashScope's upload flow (with "
        "`X-DashScope-OssResourceResolve: enable`). An IRI is accepted "
        "(the host is IDNA-encoded, the path percent-encoded); a URL with a user name or "
        "password, a port outside 1-65535, or control characters is refused.",
        json_schema_extra={"format": "iri", "maxLength": MAX_URL_LENGTH, "pattern": URL_PATTERN},
    )


class CreateInput(BaseModel):
    model_config = ConfigDict(strict=True)

    prompt: str = Field(
        description="What to edit: not empty, no control characters but tab and line breaks. "
        "Past 2,500 CJK / 5,000 other characters it is cut.",
        examples=["让视频中的角色穿上图片中的条纹毛衣"],
        json_schema_extra={"minLength": 1, "pattern": PROMPT_PATTERN},
    )
    media: list[MediaItem] = Field(
        min_length=2,
        max_length=2,
        description="Exactly 2 items, in any order: 1 video + 1 reference image.",
        json_schema_extra={
            "allOf": [{"contains": _media_items(True)}, {"contains": _media_items(False)}]
        },
    )


class CreateParameters(BaseModel):
    model_config = ConfigDict(strict=True)

    resolution: Literal["720P", "1080P"] = "1080P"
    watermark: bool = True
    seed: Annotated[int, Field(ge=0, le=SEED_MAX)] | None = Field(
        None,
        description="Absent or null: a random seed is drawn (and reported in the query answer).",
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
        min_length=1,
        max_length=6,
        description="One video and 0 to 5 reference images, in any order.",
        json_schema_extra={"contains": _media_items(True), "minContains": 1, "maxContains": 1},
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


# --- reading the JSON --------------------------------------------------------------------


class _NotAValue(str):
    """A JSON token kept as text because it is no value of this API: NaN, Infinity, or a
    number too long to convert. The tree check names the field that holds it."""


class _DuplicateKeys(dict):  # type: ignore[type-arg]
    """A JSON object that named a key twice (the key is kept for the message)."""

    duplicate: str = ""


def _number(text: str) -> int | float | _NotAValue:
    if len(text) > MAX_NUMBER_DIGITS:
        return _NotAValue(f"a {len(text):,}-digit number")
    value = float(text) if any(c in text for c in ".eE") else int(text)
    return value if math.isfinite(value) else _NotAValue(f"{text} (too large)")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) == len(pairs):
        return obj
    dup = _DuplicateKeys(obj)
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            dup.duplicate = key
            break
        seen.add(key)
    return dup


class _DuplicateKey(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise _DuplicateKey
    return obj


def describe(value: Any) -> str:
    """``value`` for a message: JSON-like, at most 80 characters, every control character
    and lone surrogate escaped, so that the message itself can always be sent."""
    if isinstance(value, _NotAValue):
        return str(value)
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return escape_invisible(text)


_NOT_JSON = {"NaN", "Infinity", "-Infinity"}
# The API's own fields, by the object that holds them ("input.media[]": each media item).
_FIELDS = {
    "body": ("model", "input", "parameters"),
    "input": ("prompt", "media"),
    "input.media[]": ("type", "url"),
    "parameters": ("resolution", "watermark", "seed", "audio_setting"),
}


def _name(path: str) -> str:
    return "the body" if path == "body" else path


def _field(path: str, key: str) -> str:
    shown = key if key.isidentifier() else describe(key)
    return f"{path}.{shown}" if path != "body" else shown


# Markers of what may need the careful reading: a \\u escape (of a control character or a
# surrogate?), NaN/Infinity, a raw DEL, a raw C1 control (UTF-8 \xc2\x80-\xc2\x9f).
_SUSPECT = (b"\\u", b"NaN", b"Infinity", b"\x7f", b"\xc2")
_ESCAPE_SUSPECT = re.compile(rb"\\u(?:00[0-1]|007[fF]|00[89]|[dD][89a-fA-F])")
_C1 = re.compile(rb"\xc2[\x80-\x9f]")
_FAST_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys)


def _needs_careful_reading(body: bytes) -> bool:
    if body.count(b"{") + body.count(b"[") > MAX_JSON_DEPTH:
        return True
    for marker in _SUSPECT:
        if marker in body:
            if marker == b"\\u":
                if _ESCAPE_SUSPECT.search(body):  # CJK sent as \\u escapes is not suspect
                    return True
            elif marker != b"\xc2" or _C1.search(body):
                return True
    return False


def load_json(body: bytes) -> Any:
    """The JSON document in ``body``; raise :class:`InvalidJson`/:class:`InvalidRequest` for
    anything this API never accepts, naming where it is: nesting deeper than
    ``MAX_JSON_DEPTH``, NaN/Infinity, duplicate keys, and in the API's fields numbers of
    more than ``MAX_NUMBER_DIGITS`` digits and control characters or lone surrogates."""
    if not _needs_careful_reading(body):
        # The common case, at about the cost of json.loads: nothing above can be in it (raw
        # control characters are not JSON, the brackets bound the depth, and a number too
        # long to convert raises ValueError).
        try:
            return _FAST_DECODER.decode(body.decode("utf-8"))
        except (_DuplicateKey, UnicodeDecodeError, ValueError):
            pass  # the careful reading below says what and where
    if not body.strip():
        raise InvalidJson("the body is empty; send the request as a JSON object")
    try:
        data = json.loads(
            body,
            object_pairs_hook=_object,
            parse_int=_number,
            parse_float=_number,
            parse_constant=_NotAValue,
        )
    except RecursionError:
        raise InvalidJson(f"the body is nested deeper than {MAX_JSON_DEPTH} levels") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidJson(f"the body is not valid JSON: {describe(str(exc))[1:-1]}") from None
    # One walk over the tree (a create body has about 15 nodes). JSON-level faults count
    # anywhere; the characters of strings and the size of numbers count in the API's own
    # fields only (other fields are ignored, as the schema allows).
    todo: list[tuple[Any, str, int, str | None]] = [(data, "body", 1, "body")]
    while todo:
        node, path, depth, field = todo.pop()
        if depth > MAX_JSON_DEPTH:
            raise InvalidJson(f"the body is nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(node, dict):
            if isinstance(node, _DuplicateKeys):
                raise InvalidJson(f"{_name(path)} has the key {describe(node.duplicate)} twice")
            known = _FIELDS.get(field or "", ())
            for key, value in node.items():
                child = (key if field == "body" else f"{field}.{key}") if key in known else None
                todo.append((value, _field(path, key), depth + 1, child))
        elif isinstance(node, list):
            item = "input.media[]" if field == "input.media" else None
            todo.extend((v, f"{path}[{i}]", depth + 1, item) for i, v in enumerate(node))
        elif isinstance(node, _NotAValue):
            if field is not None or node in _NOT_JSON:
                raise InvalidRequest(
                    f"{_name(path)} is {node}, which is not a JSON value this API accepts"
                )
        elif isinstance(node, str) and field is not None:
            bad = (_BAD_IN_PROMPT if field == "input.prompt" else _BAD_ANYWHERE).search(node)
            if bad:
                what = (
                    "a lone surrogate"
                    if "\ud800" <= bad.group() <= "\udfff"
                    else "a control character"
                )
                raise InvalidRequest(
                    f"{_name(path)} holds {what} ({describe(bad.group())} at position {bad.start()}): "
                    f"got {describe(node)}"
                )
    return data


# --- the create body ---------------------------------------------------------------------


_FIELD_NAMES = {"model", "input", "prompt", "media", "type", "url", "parameters"} | set(
    CreateParameters.model_fields
)


def _where(loc: tuple[Any, ...]) -> str:
    """``input.media[1].url`` from pydantic's location (its union-branch tags left out)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in _FIELD_NAMES:
            out += f".{part}" if out else str(part)
    return out or "body"


def _media_summary(items: list[Any]) -> str:
    """``got only a video``, ``got 2 videos and a reference_image``, ``got none``..."""
    kinds = [m.get("type") if isinstance(m, dict) else None for m in items]
    videos, refs = kinds.count("video"), kinds.count("reference_image")
    others = len(kinds) - videos - refs
    parts = []
    for n, one, many in (
        (videos, "a video", "videos"),
        (refs, "a reference_image", "reference_images"),
        (others, "an item of another type", "items of other types"),
    ):
        if n:
            parts.append(one if n == 1 else f"{n} {many}")
    if not parts:
        return "got none"
    if len(parts) == 1:
        return f"got only {parts[0]}"
    return "got " + ", ".join(parts[:-1]) + " and " + parts[-1]


def parse_create(body: bytes, *, dialect: str = "anyfast") -> CreateRequest:
    """Parse and check a create body; raise an :class:`InvalidRequest` naming the field.

    ``dialect``: ``anyfast`` (the seed: one video and one reference image) or
    ``dashscope`` (one video and 0 to 5 reference images).
    """
    model_class = DashScopeCreateRequest if dialect == "dashscope" else CreateRequest
    refs = (0, 5) if dialect == "dashscope" else (1, 1)
    media_rule = (
        "one video and 0 to 5 reference_images"
        if refs == (0, 5)
        else "one video and one reference_image"
    )
    # 1. JSON, and a JSON object.
    data = load_json(body)
    if not isinstance(data, dict):
        raise InvalidJson(f"the body must be a JSON object, got {describe(data)}")

    # 2. The model, and the native format.
    if "model" not in data or data["model"] in (None, ""):
        raise MissingModel(f'model is required; use "{MODEL_NAME}"')
    if data["model"] != MODEL_NAME:
        raise UnknownModel(f'model {describe(data["model"])} is not supported; use "{MODEL_NAME}"')
    simplified = sorted(SIMPLIFIED_FIELDS & data.keys())
    if simplified:
        raise InvalidRequest(
            f"top-level {', '.join(simplified)} is the simplified format, which is not "
            "supported: the native format is required, with input.prompt and "
            'input.media[] ({"type": "video" | "reference_image", "url": ...})'
        )

    # 3. Types, enums and ranges from the schema, in the API's words. (JSON Schema's integers
    # include 42.0: a whole float is the integer it spells.)
    parameters = data.get("parameters")
    if isinstance(parameters, dict):
        seed = parameters.get("seed")
        if isinstance(seed, float) and seed.is_integer():
            parameters["seed"] = int(seed)
    try:
        req = model_class.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        media = data.get("input", {}).get("media") if isinstance(data.get("input"), dict) else None
        for err in errors:
            if _where(err["loc"]) == "input.media" and err["type"] in ("too_short", "too_long"):
                raise InvalidRequest(
                    f"input.media must hold {media_rule}; {_media_summary(media or [])}"
                ) from None
        err = errors[0]
        where = _where(err["loc"])
        if err["type"] == "missing":
            raise InvalidRequest(f"{where} is required") from None
        rule = RULES.get(re.sub(r"\[\d+\]", "[]", where), "valid")
        raise InvalidRequest(f"{where} must be {rule}, got {describe(err['input'])}") from None

    # 4. What the schema says but pydantic does not check.
    if not req.input.prompt.strip(_SPACE_CHARS):
        raise InvalidRequest(f"input.prompt must not be empty, got {describe(req.input.prompt)}")
    kinds = [m.type for m in req.input.media]
    if kinds.count("video") != 1 or not refs[0] <= kinds.count("reference_image") <= refs[1]:
        raise InvalidRequest(
            f"input.media must hold {media_rule}; {_media_summary([m.model_dump() for m in req.input.media])}"
        )
    for i, item in enumerate(req.input.media):
        if item.url[:6].lower() == "oss://":  # an upload: checked against the key's uploads
            if not item.url[6:].isprintable() or len(item.url) > 406:
                raise InvalidRequest(
                    f"input.media[{i}].url is not an oss:// key of an upload: got "
                    f"{describe(item.url)}"
                )
            continue
        try:
            ascii_media_url(item.url)
        except BadMediaUrl as exc:
            raise InvalidRequest(f"input.media[{i}].url {exc}: got {describe(item.url)}") from None
    return req
