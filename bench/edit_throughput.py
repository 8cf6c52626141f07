"""Edit throughput: a 15 s clip edited by ``classic`` at 720P and 1080P, against a plain transcode.

Usage: python bench/edit_throughput.py [--repeat 3] [--clip bigbuckbunny] [--tiers 720P]
The baseline is a plain PyAV decode -> resize -> encode of the same clip to the
same size, 24 fps and encoder settings, written with no vedit code. Each figure
is the best of ``--repeat`` runs, baseline and edit alternating in one process;
the edit's time includes the engine's set-up (loading models, reading the reference,
and for a person edit the look for a person in frames sampled from the clip).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
from _harness import machine

from corpus import CLIPS, Exposure, clip, make_variant
from mediagen import make_image, make_person_video, make_video
from vedit.config import Settings
from vedit.engines.base import EditJob
from vedit.engines.classic import ClassicEngine
from vedit.engines.plan import plan_edit
from vedit.media.limits import MediaLimits, OutputPolicy
from vedit.media.probe import load_image, probe_video
from vedit.media.video import plan_output, render


def plain_transcode(
    src: Path, dest: Path, width: int, height: int, frames: int, s: Settings
) -> None:
    with (
        av.open(str(src)) as inp,
        av.open(str(dest), "w", format="mp4", options={"movflags": "+faststart"}) as out,
    ):
        v = out.add_stream("libx264", rate=24)
        v.width, v.height, v.pix_fmt = width, height, "yuv420p"
        v.codec_context.time_base = Fraction(1, 24)
        v.options = {
            "crf": str(s.x264_crf),
            "preset": s.x264_preset,
            "threads": str(s.x264_threads),
            "x264-params": s.x264_params,
        }
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        n = 0
        for frame in inp.decode(vin):
            # the same 24 fps selection as the output stage: one output frame per 1/24 s
            while n < frames and n / 24 <= float(frame.time) + 1e-9:
                f = frame.reformat(width, height, "yuv420p")
                f.pict_type = 0  # as ffmpeg does: the encoder picks frame types
                f.pts, f.time_base = n, Fraction(1, 24)
                out.mux(v.encode(f))
                n += 1
            if n >= frames:
                break
        out.mux(v.encode(None))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--prompt",
        default="make it look like the reference photo",
        help="the edit to time, as a prompt (its plan picks the operation)",
    )
    ap.add_argument(
        "--background",
        choices=["photo", "gradient", "person"],
        default="photo",
        help="photo: a panned photograph (textured like real footage); "
        "gradient: flat shapes, unusually cheap to encode; "
        "person: a person walking across a panned room (for background and clothing edits)",
    )
    ap.add_argument(
        "--clip",
        choices=CLIPS,
        help="real footage from tests/corpus.py instead of a made clip (its first 15 s)",
    )
    ap.add_argument("--tiers", default="720P,1080P", help="output tiers, comma-separated")
    args = ap.parse_args()
    s = Settings()
    tmp = Path(tempfile.mkdtemp(prefix="vedit-bench-"))
    if args.clip:
        src = clip(args.clip)
        if src.suffix.lower() not in (".mp4", ".mov"):  # vtest.avi: the API takes MP4/MOV
            src = make_variant(src, tmp / "clip.mp4", Exposure(1.0, 1.0), seconds=15, crf=18)
    elif args.background == "person":
        src = make_person_video(tmp / "clip.mp4", width=1920, height=1080, fps=30, seconds=15)
    else:
        src = make_video(
            tmp / "clip.mp4",
            width=1920,
            height=1080,
            fps=30,
            seconds=15,
            audio=False,
            background=args.background,
        )
    ref = load_image(make_image(tmp / "ref.jpg", kind="coffee"), MediaLimits.of(s))
    info = probe_video(src, MediaLimits.of(s))
    plan = plan_edit(args.prompt)
    print(f"machine: {machine()}")
    print(
        f"command: python bench/edit_throughput.py --repeat {args.repeat} "
        f"--background {args.background} --prompt {args.prompt!r}"
        + (f" --clip {args.clip}" if args.clip else "")
        + f" --tiers {args.tiers}"
    )
    print(f"plan: {plan.operation} {plan.style or ''} (as asked; the engine may revise it)")
    what = (
        f"{args.clip} ({info.width}x{info.height}, {info.duration_s:.1f} s)"
        if args.clip
        else f"15 s, 1920x1080, 30 fps, {args.background} background, no audio"
    )
    print(f"clip: {what}; x264 preset {s.x264_preset}, crf {s.x264_crf}, {s.x264_params}")
    for tier in args.tiers.split(","):
        spec = plan_output(
            info,
            resolution=tier,
            watermark=True,
            audio_setting="auto",
            policy=OutputPolicy.of(s),
            metadata={},
        )
        best_plain = best_edit = float("inf")
        for _ in range(args.repeat):
            t = time.perf_counter()
            plain_transcode(src, tmp / "plain.mp4", spec.width, spec.height, spec.frames, s)
            best_plain = min(best_plain, time.perf_counter() - t)
            t = time.perf_counter()  # the engine's set-up (models, reference) counts too
            # As the worker does it: the engine may look at the clip first (a person edit
            # checks that it has a person), and that counts too.
            job = EditJob(
                args.prompt, plan, [ref], 0, spec.width, spec.height, spec.fps, spec.frames,
                source=src,
            )  # fmt: skip
            prepared = ClassicEngine().prepare(job)
            render(src, tmp / "edit.mp4", spec, prepared.editor, OutputPolicy.of(s))
            best_edit = min(best_edit, time.perf_counter() - t)
        carried_out = prepared.outcome()
        print(f"{tier} plan carried out: {carried_out.operation}, because {carried_out.because}")
        print(
            f"{tier} ({spec.width}x{spec.height}, {spec.frames} frames): plain transcode "
            f"{best_plain:.2f} s, classic edit {best_edit:.2f} s, ratio "
            f"{best_edit / best_plain:.2f}x"
        )


if __name__ == "__main__":
    main()
