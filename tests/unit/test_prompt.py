"""Prompt truncation as DashScope does it: 2,500 CJK or 5,000 other characters."""

from __future__ import annotations

from vedit.api.schemas import truncate_prompt


def test_short_prompts_are_kept_whole() -> None:
    assert truncate_prompt("把整个画面转换为水彩风格") == "把整个画面转换为水彩风格"


def test_cjk_is_cut_at_2500_and_latin_at_5000() -> None:
    assert len(truncate_prompt("猫" * 2600)) == 2500
    assert len(truncate_prompt("a" * 5100)) == 5000
    assert truncate_prompt("a" * 5000) == "a" * 5000


def test_mixed_text_counts_cjk_double() -> None:
    out = truncate_prompt("猫" * 1000 + "a" * 4000)
    assert out == "猫" * 1000 + "a" * 3000
