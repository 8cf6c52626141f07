"""The prompt planner: a table of prompts in Chinese and English, and the plan each must give."""

from __future__ import annotations

import pytest

from vedit.engines.plan import plan_edit, without_reference

CLOTHES = ("restyle_clothing", "upper_body_clothing", None, "garment")
BACKGROUND = ("replace_background", "background", None, "background_scene")
LOOK = ("color_grade", "frame", None, "look")
AFTER_REFERENCE = ("stylize", "frame", "reference", "style_source")


def style(name: str) -> tuple[str, str, str, str]:
    return ("stylize", "frame", name, "style_tint")


TABLE = [
    # clothing, the HappyHorse example first
    ("让视频中的角色穿上图片中的条纹毛衣", CLOTHES),
    ("Make the character wear the striped sweater in the image", CLOTHES),
    ("make the man WEAR the jacket from the picture", CLOTHES),
    ("Dress her in the outfit shown in the reference", CLOTHES),
    ("change his shirt to the one in the image", CLOTHES),
    ("swap the hoodie for the reference garment", CLOTHES),
    ("give the woman the red coat from the photo", CLOTHES),
    ("把人物的衣服换成参考图里的衬衫", CLOTHES),
    ("让他穿着图中的外套", CLOTHES),
    ("给女孩换上图片里的连衣裙", CLOTHES),
    ("将角色的上衣替换为参考图中的T恤", CLOTHES),
    ("换装：穿上图片中的卫衣", CLOTHES),
    # background
    ("将视频背景更换为图片中的场景", BACKGROUND),
    ("replace the background with the beach in the image", BACKGROUND),
    ("Replace the Background with the reference photo", BACKGROUND),
    ("change the backdrop to the city in the picture", BACKGROUND),
    ("swap out the background for this mountain scene", BACKGROUND),
    ("put the person in the scene from the image", BACKGROUND),
    ("move them to the place shown in the reference scene", BACKGROUND),
    ("把背景换成参考图中的海滩", BACKGROUND),
    ("背景替换为图片里的森林", BACKGROUND),
    ("把人物放到图片中的场景里", BACKGROUND),
    ("把场景换成图中的街道", BACKGROUND),
    ("ＲＥＰＬＡＣＥ ＴＨＥ ＢＡＣＫＧＲＯＵＮＤ", BACKGROUND),  # full-width
    # whole-frame styles
    ("把整个画面转换为水彩风格", style("watercolor")),
    ("turn the whole scene into a watercolour painting", style("watercolor")),
    ("make it look like an oil painting", style("oil_painting")),
    ("转换成油画效果", style("oil_painting")),
    ("render it as a pencil sketch", style("pencil_sketch")),
    ("画面变成素描风格", style("pencil_sketch")),
    ("anime style please", style("cartoon")),
    ("turn the video into a cartoon", style("cartoon")),
    ("变成日漫风格", style("cartoon")),
    ("二次元动漫效果", style("cartoon")),
    ("make it black and white", style("black_and_white")),
    ("Monochrome, like the reference", style("black_and_white")),
    ("把视频变成黑白的", style("black_and_white")),
    ("give it a vintage film look", style("vintage_film")),
    ("retro 70s feel", style("vintage_film")),
    ("复古老电影风格", style("vintage_film")),
    ("加上胶片质感，有怀旧感", style("vintage_film")),
    # in the style of the reference image itself (it wins over a named style)
    ("paint the video in the style of the image", AFTER_REFERENCE),
    ("Restyle it in the style of the reference painting", AFTER_REFERENCE),
    ("use the same style as the picture", AFTER_REFERENCE),
    ("the painting's style, please", AFTER_REFERENCE),
    ("a watercolour in the style of the reference image", AFTER_REFERENCE),
    ("把视频变成参考图的风格", AFTER_REFERENCE),
    ("按照这幅画的画风重绘视频", AFTER_REFERENCE),
    ("用图片的笔触和风格重新绘制", AFTER_REFERENCE),
    # the reference's look
    ("make it look like the reference photo", LOOK),
    ("match the colors of the image", LOOK),
    ("colour grade it like the picture", LOOK),
    ("参考图片的色调调整视频", LOOK),
    ("让视频的颜色和图片一致", LOOK),
    # precedence and negation
    ("keep the background but make it watercolor", style("watercolor")),
    ("保持背景不变，画面转换为水彩风格", style("watercolor")),
    ("replace the background with a watercolor painting of the beach", BACKGROUND),
    ("穿越到图片中的场景", BACKGROUND),  # "穿越" (travel) is not "穿" (wear)
]


@pytest.mark.parametrize(("prompt", "expected"), TABLE, ids=[p for p, _ in TABLE])
def test_prompt_gives_plan(prompt: str, expected: tuple) -> None:
    plan = plan_edit(prompt)
    assert (plan.operation, plan.region, plan.style, plan.reference_role) == expected
    assert plan.matched and plan.because


def test_the_table_is_large_and_bilingual() -> None:
    chinese = [p for p, _ in TABLE if any("\u4e00" <= c <= "\u9fff" for c in p)]
    assert len(TABLE) >= 40 and len(chinese) >= 15 and len(TABLE) - len(chinese) >= 15


@pytest.mark.parametrize("prompt", ["do something cool", "让它更好看", "42", "!!!"])
def test_unknown_prompts_get_the_reference_look_and_say_so(prompt: str) -> None:
    plan = plan_edit(prompt)
    assert (plan.operation, plan.region, plan.reference_role) == ("color_grade", "frame", "look")
    assert plan.matched is False and "no known edit" in plan.because
    assert plan.to_dict()["matched"] is False


@pytest.mark.parametrize(
    ("prompt", "strength"),
    [
        ("turn it into a watercolour painting", 0.85),
        ("a subtle watercolour", 0.51),
        ("稍微有一点水彩效果", 0.51),
        ("a strong oil painting", 1.0),
        ("浓重的油画风格", 1.0),
        ("in the style of the image", 0.8),
        ("slightly in the style of the image", 0.48),
        ("make it black and white", None),  # a grade, not a painting
        ("make it look like the reference photo", None),
    ],
)
def test_a_painted_style_has_a_strength_the_prompt_can_change(
    prompt: str, strength: float | None
) -> None:
    assert plan_edit(prompt).style_strength == strength


def test_in_the_style_of_the_image_needs_the_image() -> None:
    plan = without_reference(plan_edit("in the style of the image"))
    assert (plan.operation, plan.fallback_from) == ("none", "stylize")
    assert "no reference image" in plan.because
    named = without_reference(plan_edit("watercolour"))
    assert (named.operation, named.style, named.reference_role) == ("stylize", "watercolor", "none")
