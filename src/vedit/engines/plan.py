"""The edit plan: what a prompt asks for, in terms any engine can carry out.

``plan_edit(prompt)`` reads a Chinese or English prompt (any case, full- or
half-width, common synonyms) and says which region to change, how, in which
style, and what the reference image is for. A prompt it cannot map gets the
whole-frame reference look, and the plan says so (``matched`` is False).

This is plain code with no model: a table of words per concept, and a fixed
order of precedence when a prompt names several (clothing, then background,
then a style, then the look of the reference).

The plan is revised as the edit goes on, and says so: an engine that cannot do
an operation falls back to the look (``fall_back``); a person edit on a clip
where the person models find no person falls back too (``person_checked``);
and once the video is made the plan says what was done (``carried_out``).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import asdict, dataclass, replace
from typing import Any

# --- the vocabulary -------------------------------------------------------------------

# fmt: off
STYLES: dict[str, tuple[str, ...]] = {
    "watercolor": (
        "watercolor", "watercolour", "water color", "water colour", "水彩",
    ),
    "oil_painting": (
        "oil painting", "oil-painting", "oil paint", "impasto", "油画", "油彩",
    ),
    "pencil_sketch": (
        "pencil sketch", "pencil drawing", "sketch", "pencil", "charcoal", "line drawing", "素描",
        "铅笔画", "铅笔", "速写", "线稿",
    ),
    "cartoon": (
        "cartoon", "anime", "manga", "comic", "toon", "cel shad", "ghibli", "卡通", "动漫", "动画",
        "漫画", "二次元", "日漫",
    ),
    "black_and_white": (
        "black and white", "black-and-white", "black & white", "b&w", "b/w", "monochrome",
        "grayscale", "greyscale", "gray scale", "grey scale", "黑白", "单色", "灰度",
    ),
    "vintage_film": (
        "vintage", "retro", "old film", "old movie", "film grain", "film look", "analog film",
        "analogue film", "sepia", "70s", "80s", "super 8", "复古", "老电影", "胶片", "怀旧", "老照片",
        "年代感",
    ),
}
# "In the style of the image": painted after the reference itself (style "reference").
REFERENCE_STYLE = re.compile(
    r"(?<![a-z])(?:style|brushwork|brush strokes|technique) of (?:the |this |that |my |your |a )?"
    r"(?:reference |given |attached |example |second |first )?"
    r"(?:image|picture|photo|painting|artwork|art|drawing|reference|ref)(?![a-z])"
    r"|(?<![a-z])(?:image|picture|photo|painting|artwork|drawing|reference)(?:'s|s')? "
    r"(?:art |painting |drawing )?style(?![a-z])"
    r"|(?<![a-z])(?:same|similar) (?:art |painting |drawing )?style as"
    r"|(?<![a-z])paint(?:ed)? (?:it |this |the video )?like the (?:image|picture|painting|reference)"
)
REFERENCE_STYLE_CJK = (("风格", "画风", "笔触", "画法"), ("参考图", "图片", "图中", "这幅画", "这张图", "参考", "这幅", "图像"))
# How strongly a painted style is laid on, when the prompt says.
LIGHT = (
    "lightly", "subtle", "subtly", "slight", "slightly", "a hint of", "a touch of", "hint of",
    "touch of", "淡淡", "轻微", "稍微", "轻度", "一点",
)
STRONG = (
    "strong", "strongly", "heavy", "heavily", "bold", "intense", "fully", "very", "thick",
    "浓", "强烈", "浓重", "浓郁", "重度", "完全",
)
# The style strength of each painted style (0: the scene's own style, 1: the picture's), and
# what LIGHT and STRONG make of it.
STYLE_STRENGTH = {
    "watercolor": 0.85, "oil_painting": 0.9, "pencil_sketch": 0.7, "cartoon": 0.6,
    "reference": 0.8,
}
LIGHT_SHARE = 0.6  # a light style is this share of the default
STRONG_STRENGTH = 1.0
BACKGROUND = (
    "background", "backdrop", "back ground", "surroundings", "environment", "setting",
    "scene behind", "behind the", "背景", "环境", "身后",
)
# A scene counts as the background when a move is asked for too.
SCENE_ONLY = (
    "scene", "场景", "画面背景",
)
CLOTHING = (
    "wear", "wearing", "wears", "dress", "dressed", "outfit", "clothes", "clothing", "garment",
    "shirt", "t-shirt", "tshirt", "tee", "sweater", "jumper", "pullover", "hoodie", "jacket",
    "coat", "blazer", "blouse", "vest", "cardigan", "uniform", "robe", "costume", "knitwear",
    "穿上", "穿着", "衣服", "毛衣", "衬衫", "外套", "夹克", "t恤", "上衣", "服装", "卫衣", "西装", "连衣裙", "裙子", "针织衫",
    "马甲", "制服", "换装", "衣着", "着装",
)
REPLACE = (
    "replace", "change", "swap", "switch", "turn", "make", "put", "place", "move", "set",
    "transport", "use", "换", "更换", "替换", "改", "变", "改成", "换成", "变成", "放到", "放在", "置于", "移到",
    "到", "去", "进入",
)
KEEP = (
    "keep the background", "keep background", "same background", "background unchanged", "保持背景",
    "背景不变", "不要改变背景", "不改变背景", "保留背景",
)
# fmt: on


@dataclass(frozen=True)
class EditPlan:
    """What to do to the video.

    - ``operation``: ``restyle_clothing`` | ``replace_background`` | ``stylize`` |
      ``color_grade`` | ``none`` (no reference image to work from: see ``without_reference``)
    - ``region``: ``upper_body_clothing`` | ``background`` | ``frame``
    - ``style``: for ``stylize``, one of :data:`STYLES`, or ``reference`` (painted after the
      reference image itself: "in the style of the image"); else None
    - ``style_strength``: for a painted style (:data:`STYLE_STRENGTH`), how far the picture's
      style replaces the scene's own, 0..1 (lighter or stronger when the prompt says so);
      None for other plans
    - ``reference_role``: ``garment`` | ``background_scene`` | ``style_tint`` |
      ``style_source`` (the picture a style is painted after) | ``look`` | ``none``
    - ``matched``: False when the prompt named nothing known (the look is the default)
    - ``because``: the words that decided, for people reading the plan
    - ``fallback_from``: the operation asked for, when the engine cannot do it and does
      the look of the reference instead
    - ``sampled_frames``, ``sampled_with_person``: for a person edit (background, clothing),
      how many frames of the clip the person models looked at before the edit, and in how
      many of them they found a person (see :func:`person_checked`); None when no check was
      made
    - ``applied``: once the video is made, whether the edit asked for was made: False for
      ``none``, for a plan that fell back (``fallback_from``: the look was made instead), and
      for a person edit that found the person in no frame; None before
    - ``person_frame_share``: once a person edit's video is made, the share of its edited
      frames in which the person was found and edited (0..1); None otherwise
    """

    operation: str
    region: str
    style: str | None
    reference_role: str
    matched: bool
    because: str
    fallback_from: str | None = None
    sampled_frames: int | None = None
    sampled_with_person: int | None = None
    applied: bool | None = None
    person_frame_share: float | None = None
    style_strength: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def normalize(prompt: str) -> str:
    """Lower case, half-width (NFKC), single spaces."""
    text = unicodedata.normalize("NFKC", prompt).lower()
    return re.sub(r"\s+", " ", text).strip()


def _found(text: str, words: tuple[str, ...]) -> str | None:
    """The first of ``words`` in ``text``: whole words for Latin text, substrings for CJK."""
    for word in words:
        if word.isascii():
            if re.search(rf"(?<![a-z]){re.escape(word)}(?![a-z])", text):
                return word
        elif word in text:
            return word
    return None


# operation -> (region, what the reference image is for)
OPERATIONS = {
    "restyle_clothing": ("upper_body_clothing", "garment"),
    "replace_background": ("background", "background_scene"),
    "stylize": ("frame", "style_tint"),
    "color_grade": ("frame", "look"),
}
LOOK_WORDS = (
    "look like", "looks like", "colour", "color", "grade", "grading", "tone", "mood", "palette",
    "lighting", "match", "reference", "色调", "色彩", "颜色", "调色", "氛围", "光线", "参考",
    "一样", "一致",
)  # fmt: skip


def _plan(operation: str, because: str, style: str | None = None, matched: bool = True) -> EditPlan:
    region, role = OPERATIONS[operation]
    return EditPlan(operation, region, style, role, matched, because)


def fall_back(plan: EditPlan, reason: str) -> EditPlan:
    """The plan an engine that cannot do ``plan.operation`` carries out: the reference's look.
    ``reason`` says why (the engine's ``why_not``)."""
    return EditPlan(
        "color_grade", "frame", None, "look", plan.matched,
        f"{plan.because}; {reason}, so the reference's look is applied",
        fallback_from=plan.operation,
    )  # fmt: skip


# What a person edit does with a frame in which it finds no person (the person left the
# shot, or is hidden): stated in the plan, since it decides what those frames show.
WITHOUT_PERSON = {
    "replace_background": "frames without a person show only the new background",
    "restyle_clothing": "frames without a person are left as they are",
}
# What the video shows when a person edit found the person in no frame at all.
NO_PERSON_OUTPUT = {
    "replace_background": "every frame shows only the new background",
    "restyle_clothing": "no frame was changed",
}


def person_checked(
    plan: EditPlan,
    sampled: int,
    with_person: int,
    needed: int,
    *,
    posed: int | None = None,
    detected: int | None = None,
) -> EditPlan:
    """``plan`` (a person edit) after the person models looked at ``sampled`` frames of the
    clip and found someone in ``with_person`` of them: carried out when that is at least
    ``needed`` (or every frame sampled), else the reference's look instead — an edit that
    has no person to work on is not claimed. Where the person detector looked too,
    ``posed`` is the frames in which the pose model found its person and ``detected`` those
    in which the detector found people the pose model did not; None: the pose model alone."""
    who = "the pose model" if detected is None else "the pose model and the person detector"
    if with_person and with_person >= min(needed, sampled):
        if detected:
            seen = (
                f"people were found in {with_person} of the {sampled} frames sampled from the "
                f"clip (the pose model found its person in {posed or 0}, the person detector "
                f"people it missed in {detected})"
            )
        else:
            seen = f"the pose model found a person in {with_person} of the {sampled} frames "
            seen += "sampled from the clip"
        return replace(
            plan,
            because=f"{plan.because}; {seen}; {WITHOUT_PERSON[plan.operation]}",
            sampled_frames=sampled,
            sampled_with_person=with_person,
        )
    if with_person:
        reason = (
            f"{who} found a person in only {with_person} of the {sampled} frames "
            f"sampled from the clip ({needed} needed)"
        )
    elif sampled:
        reason = f"{who} found no person in the {sampled} frames sampled from the clip"
    else:
        reason = "no frame of the clip could be read to look for a person"
    return replace(fall_back(plan, reason), sampled_frames=sampled, sampled_with_person=with_person)


def carried_out(
    plan: EditPlan, frames_edited: int | None = None, frames_with_person: int | None = None
) -> EditPlan:
    """The plan once the video is made: ``applied`` False where the edit asked for was not
    made (a plan that fell back to the look, or to no edit). For a person edit,
    ``frames_edited`` and ``frames_with_person`` say in how many of the frames it edited it
    found the person."""
    if plan.operation == "none" or plan.fallback_from:
        return replace(plan, applied=False)  # the edit asked for was not made
    if plan.operation not in WITHOUT_PERSON or frames_edited is None or frames_with_person is None:
        return replace(plan, applied=True)
    share = round(frames_with_person / frames_edited, 3) if frames_edited else 0.0
    if frames_with_person:
        return replace(plan, applied=True, person_frame_share=share)
    return replace(
        plan,
        applied=False,
        person_frame_share=0.0,
        because=f"{plan.because}; but no person was found while editing, so "
        f"{NO_PERSON_OUTPUT[plan.operation]}",
    )


def without_reference(plan: EditPlan) -> EditPlan:
    """The plan for a request with no reference image (DashScope's dialect allows none):
    a style is drawn untinted; what needs a reference (a look, a background, a garment)
    cannot be done, and the video is passed through unedited — the plan says so."""
    if plan.operation == "stylize" and plan.style != "reference":
        return replace(plan, reference_role="none", because=f"{plan.because}; no reference "
                       "image, so the style is not tinted")  # fmt: skip
    return EditPlan(
        "none", "frame", None, "none", plan.matched,
        f"{plan.because}; but the request has no reference image to take it from, so the "
        "video is re-encoded without an edit",
        fallback_from=plan.operation,
    )  # fmt: skip


def plan_edit(prompt: str) -> EditPlan:
    """The plan for ``prompt``; unknown prompts get the whole-frame reference look."""
    text = normalize(prompt)
    keeps_background = _found(text, KEEP)
    style = _style(text)

    # 1. Clothing: "wear the striped sweater in the image", "让角色穿上图片中的毛衣".
    garment = _found(text, CLOTHING)
    if garment:
        return _plan("restyle_clothing", f"clothing word {garment!r}")

    # 2. Background: "replace the background with the beach", "将视频背景更换为图片中的场景";
    #    a scene counts when a move is asked for and no style is named.
    if not keeps_background:
        background = _found(text, BACKGROUND)
        if background:
            return _plan("replace_background", f"background word {background!r}")
        scene, move = _found(text, SCENE_ONLY), _found(text, REPLACE)
        if scene and move and not style:
            return _plan("replace_background", f"scene word {scene!r} with {move!r}")

    # 3. A style for the whole frame: after the reference itself when the prompt says so
    #    (it wins over a named style), else a named style tinted by the reference.
    after_reference = _reference_style(text)
    if after_reference:
        plan = _plan("stylize", f"style of the reference {after_reference!r}", style="reference")
        return replace(plan, reference_role="style_source", style_strength=_strength(text, plan))
    if style:
        name, word = style
        plan = _plan("stylize", f"style word {word!r}", style=name)
        return replace(plan, style_strength=_strength(text, plan))

    # 4. The look of the reference: asked for, or the default.
    look = _found(text, LOOK_WORDS)
    if look:
        return _plan("color_grade", f"look word {look!r}")
    return _plan(
        "color_grade",
        "the prompt names no known edit: the reference's look is applied",
        matched=False,
    )


def _reference_style(text: str) -> str | None:
    """The words that ask for the reference image's own style, if any."""
    found = REFERENCE_STYLE.search(text)
    if found:
        return found.group(0)
    style_word, image_word = (_found(text, words) for words in REFERENCE_STYLE_CJK)
    if style_word and image_word:
        return f"{image_word}…{style_word}"
    return None


def _strength(text: str, plan: EditPlan) -> float | None:
    """The style strength of a painted style: the default, lighter or stronger as asked."""
    default = STYLE_STRENGTH.get(plan.style or "")
    if default is None:
        return None
    if _found(text, LIGHT):
        return round(default * LIGHT_SHARE, 2)
    if _found(text, STRONG):
        return STRONG_STRENGTH
    return default


def _style(text: str) -> tuple[str, str] | None:
    for name, words in STYLES.items():
        word = _found(text, words)
        if word:
            return name, word
    return None


_IN_WORDS = {
    "restyle_clothing": "restyle the upper-body clothing after the reference garment",
    "replace_background": "replace the background with the reference scene",
    "stylize": "restyle the whole frame",
    "color_grade": "give the video the look (colours and light) of the reference",
    "relay": "relay the edit to the upstream model",
    "none": "leave the frames as they are",
}


def plan_in_words(plan: dict[str, Any]) -> str:
    """A plan (as the query answer carries it) in one sentence, for people: what is done,
    and the words that decided it."""
    operation = plan.get("operation") or "none"
    what = _IN_WORDS.get(operation, operation.replace("_", " "))
    if operation == "stylize" and plan.get("style") == "reference":
        what += " in the style of the reference image"
    elif operation == "stylize" and plan.get("style"):
        what += f" as {plan['style'].replace('_', ' ')}"
    if plan.get("style_strength") is not None:
        what += f" (style strength {plan['style_strength']:g})"
    if plan.get("fallback_from"):
        what += f" (instead of {plan['fallback_from'].replace('_', ' ')}"
        what += ", which was not made)" if plan.get("applied") is False else ")"
    elif plan.get("applied") is False:
        what += " — not applied"
    share = plan.get("person_frame_share")
    if share is not None:
        what += f"; the person was edited in {share:.0%} of the frames"
    because = plan.get("because")
    return (
        f"{what[0].upper()}{what[1:]}: {because}." if because else f"{what[0].upper()}{what[1:]}."
    )


_ASKED = {
    "restyle_clothing": "the clothing change",
    "replace_background": "the background replacement",
    "stylize": "the style",
    "color_grade": "the look",
}


def plan_warning(plan: dict[str, Any]) -> str | None:
    """One line for people where the edit asked for was not made (the plan fell back to
    another, or a person edit found nobody while editing), saying why; None where it was."""
    asked = plan.get("fallback_from")
    if not asked and (plan.get("applied") is not False or plan.get("operation") == "none"):
        return None
    asked = asked or plan.get("operation") or "none"
    what = _ASKED.get(asked, asked.replace("_", " "))
    because = str(plan.get("because") or "")
    why = because.split("; ", 1)[1] if "; " in because else because  # after the prompt's words
    why = why.removeprefix("but ")
    return (
        f"warning: {what} asked for was not made: {why}"
        if why
        else f"warning: {what} asked for was not made"
    )
