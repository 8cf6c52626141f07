"""A tiny Wan2.1-VACE model with random weights, made on the spot (nothing downloaded):
the same ``WanVACEPipeline`` with every part shrunk, saved as a diffusers-format folder
for ``VEDIT_VACE_MODEL_DIR``. Its frames are noise-like, but every path of engine vace —
windows, masks, references, seeds, steps, cancel — runs as it would with real weights.

Sizes follow diffusers' own pipeline tests; the tokenizer is a word-level one built from a
word list, the text encoder a UMT5 whose width is the transformer's ``text_dim``.
"""

from __future__ import annotations

from pathlib import Path

WORDS_TEXT = """a an the of and with in on to is are as from its their his her it they same
person people man woman character wears wear wearing garment shirt sweater striped jacket
reference image video scene background front whole fills colours colors light mood pose
movements face hair body everything around stay drawn painting watercolour cartoon sketch
film make replace change put give look"""


def build_tiny_vace(folder: Path, seed: int = 0) -> Path:
    """Save a tiny random ``WanVACEPipeline`` into ``folder``; returns it."""
    import torch
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanVACEPipeline,
        WanVACETransformer3DModel,
    )
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for word in WORDS_TEXT.split():
        vocab.setdefault(word, len(vocab))
    words = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=words, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )
    torch.manual_seed(seed)
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(vocab), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
            relative_attention_num_buckets=8, pad_token_id=0, eos_token_id=1,
            decoder_start_token_id=0,
        )
    )  # fmt: skip
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )  # fmt: skip
    transformer = WanVACETransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16,
        out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=3,
        cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
        vace_layers=[0, 2], vace_in_channels=96,
    )  # fmt: skip
    pipe = WanVACEPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        transformer=transformer,
    )
    pipe.save_pretrained(folder)
    return folder


def require_vace() -> None:
    """Skip (or, with ``CI=true``, fail) unless the ``vace`` extra is installed."""
    import importlib.util
    import os

    import pytest

    missing = [
        m for m in ("torch", "diffusers", "transformers", "ftfy") if not importlib.util.find_spec(m)
    ]
    if not missing:
        return
    reason = f"engine vace's extra is not installed ({', '.join(missing)} missing): pip install -e '.[vace]'"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true, so this is a failure, not a skip", pytrace=False)
    pytest.skip(reason)
