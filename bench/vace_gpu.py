"""Engine vace end to end through a real ``vedit serve``: the check a machine with an
accelerator runs as it is (``bench/vace_gpu.sh``), and the CPU figures of BENCHMARKS.md.

It builds the tiny random-weight Wan2.1-VACE model (``tests/tiny_vace.py``) in a temp
folder, starts ``vedit serve`` on loopback with ``VEDIT_ENGINE=vace`` and that model at a
small working size, uploads a 5 s generated clip and a reference image through
``POST /v1/uploads``, and runs a look edit, a style edit and (when the person models and
scikit-image are installed) a clothing edit through ``POST /v1/video/generations``, one at
a time. Each result is downloaded and checked with PyAV (H.264, 24 fps, the frame count and
size expected); the figures are the submit-to-SUCCESS time seen by the client and the
worker's ``engine_seconds`` (from the task's result in the server's database).

``--classic`` (on by default) runs the same edits on the same clips through a second
server with ``VEDIT_ENGINE=classic``: the same-run baseline. When ``VEDIT_VACE_MODEL_DIR``
(or ``--model-dir``) names a real model, one 5 s edit at ``VEDIT_VACE_SIZE=480p`` with the
default window and steps (unless ``VEDIT_VACE_WINDOW`` / ``_OVERLAP`` / ``_STEPS`` /
``_GUIDANCE`` are set) follows, through a third server holding that model.

Usage: python bench/vace_gpu.py [--device cpu|cuda] [--json out.json] [--no-classic]
       [--size 256x144] [--window 17] [--overlap 4] [--steps 4] [--model-dir DIR]
Exit status: 0 when every task succeeded and every result passed its checks, 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
SRC = ROOT / "src"
if (SRC / "vedit").is_dir():
    sys.path.insert(0, str(SRC))  # this checkout's vedit, the one the servers run

import av  # noqa: E402
import httpx  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

KEY = "vk-vacegpu0000000000000000000000000000000000"
MODEL = "happyhorse-1.0-video-edit"
OUTPUT_FPS = 24
SECONDS = 5
# A 16:9 source at 720P: the output is 1280x720 (README, "Results").
RESOLUTION, OUTPUT_SIZE = "720P", (1280, 720)
EXPECTED_FRAMES = SECONDS * OUTPUT_FPS
# (name, prompt, reference, clip, the plan operation expected)
EDITS = [
    ("look", "make it look like the reference photo", "wall.jpg", "shapes.mp4", "color_grade"),
    ("style", "turn it into a watercolor painting", "wall.jpg", "shapes.mp4", "stylize"),
    (
        "clothing",
        "make the character wear the striped sweater in the image",
        "sweater.png",
        "person.mp4",
        "restyle_clothing",
    ),
]
# Taken from the environment for the real-weights edit only (else the defaults).
REAL_KEYS = ("WINDOW", "OVERLAP", "STEPS", "GUIDANCE", "OFFLOAD", "DTYPE", "FLOW_SHIFT")
# The only VEDIT_ settings of the environment the servers see; every other is the bench's.
PASSED = frozenset({"VEDIT_MODELS_DIR", "VEDIT_VACE_DTYPE", "VEDIT_VACE_OFFLOAD"})


@dataclass
class Result:
    server: str  # vace-tiny, classic, vace-real
    edit: str
    prompt: str
    ok: bool = False
    task_id: str = ""
    status: str = ""
    operation: str = ""
    submit_to_success_s: float | None = None
    engine_seconds: float | None = None
    load: float | None = None  # the machine's 1-minute load average when the task ended
    output: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


# --- the server -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def server(name: str, env: dict[str, str], start_timeout: float) -> Iterator[Server]:
    """A fresh ``vedit serve`` (one worker) on a free loopback port, in a temp data dir."""
    data = Path(tempfile.mkdtemp(prefix=f"vedit-{name}-"))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    full_env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("VEDIT_") or k in PASSED},
        "VEDIT_DATA_DIR": str(data),
        "VEDIT_API_KEY": KEY,
        "VEDIT_PUBLIC_BASE_URL": base,
        "VEDIT_RATE_LIMIT_PER_S": "0",
        **env,
    }
    if (SRC / "vedit").is_dir():
        paths = [str(SRC), *filter(None, [os.environ.get("PYTHONPATH")])]
        full_env["PYTHONPATH"] = os.pathsep.join(paths)
    log_path = data / "serve.log"
    cmd = [sys.executable, "-m", "vedit.cli", "serve", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", "1"]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, env=full_env, stdout=log, stderr=subprocess.STDOUT)
    srv = Server(name, base, data, log_path, proc)
    try:
        began = time.perf_counter()
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{name}: vedit serve exited {proc.returncode}\n{srv.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                    break
            if time.perf_counter() - began > start_timeout:
                raise RuntimeError(
                    f"{name}: no /healthz in {start_timeout:.0f} s\n{srv.log_tail()}"
                )
            time.sleep(0.2)
        srv.start_s = time.perf_counter() - began
        print(f"[{name}] vedit serve ready on {base} in {srv.start_s:.1f} s", flush=True)
        yield srv
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        if srv.keep_log:
            print(f"[{name}] server log kept: {log_path}", flush=True)
        else:
            shutil.rmtree(data, ignore_errors=True)


@dataclass
class Server:
    name: str
    base: str
    data: Path
    log_path: Path
    proc: subprocess.Popen
    start_s: float = 0.0
    keep_log: bool = False

    def log_tail(self, lines: int = 40) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return "(no server log)"

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base, headers={"Authorization": f"Bearer {KEY}"}, timeout=60
        )

    def engine_seconds(self, task_id: str) -> float | None:
        """``engine_seconds`` of the task's result (the worker's prepare + edit + encode)."""
        with contextlib.closing(sqlite3.connect(self.data / "vedit.db", timeout=30)) as db:
            row = db.execute("select result from tasks where id = ?", (task_id,)).fetchone()
        if not row or not row[0]:
            return None
        result = json.loads(row[0]) if isinstance(row[0], str) else row[0]
        return result.get("engine_seconds")


# --- one edit ---------------------------------------------------------------------------


def upload(client: httpx.Client, path: Path) -> str:
    with path.open("rb") as f:
        r = client.post("/v1/uploads", files={"file": (path.name, f)})
    if r.status_code != 200:
        raise RuntimeError(f"upload of {path.name}: HTTP {r.status_code}: {r.text[:500]}")
    return r.json()["url"]


def run_edit(
    srv: Server,
    client: httpx.Client,
    urls: dict[str, str],
    edit: tuple[str, str, str, str, str],
    out_dir: Path,
    timeout: float,
    seed: int = 7,
) -> Result:
    name, prompt, reference, clip, operation = edit
    res = Result(server=srv.name, edit=name, prompt=prompt)
    body = {
        "model": MODEL,
        "input": {
            "prompt": prompt,
            "media": [
                {"type": "video", "url": urls[clip]},
                {"type": "reference_image", "url": urls[reference]},
            ],
        },
        "parameters": {"resolution": RESOLUTION, "watermark": False, "seed": seed},
    }
    began = time.perf_counter()
    r = client.post("/v1/video/generations", json=body)
    if r.status_code != 200:
        res.problems.append(f"create: HTTP {r.status_code}: {r.text[:500]}")
        return res
    res.task_id = r.json()["task_id"]
    d: dict[str, Any] = {}
    while True:
        d = client.get(f"/v1/video/generations/{res.task_id}").json()["data"]
        if d["status"] in ("SUCCESS", "FAILURE"):
            break
        if time.perf_counter() - began > timeout:
            client.post(f"/v1/video/generations/{res.task_id}/cancel")
            res.problems.append(f"not done in {timeout:.0f} s (cancelled); last: {d}")
            srv.keep_log = True
            return res
        time.sleep(0.2)
    took = time.perf_counter() - began
    res.load = round(os.getloadavg()[0], 2)
    output = (d.get("data") or {}).get("output") or {}
    res.status = output.get("task_status", d["status"])
    res.operation = (output.get("edit_plan") or {}).get("operation", "")
    if d["status"] != "SUCCESS":
        res.problems.append(f"task {res.status}: {d.get('fail_reason') or output}")
        srv.keep_log = True
        return res
    res.submit_to_success_s = round(took, 2)
    res.engine_seconds = srv.engine_seconds(res.task_id)
    if res.operation != operation:
        res.problems.append(f"the plan is {res.operation!r}, not {operation!r}")
    dest = out_dir / f"{srv.name}-{name}.mp4"
    got = client.get(d["result_url"])
    if got.status_code != 200:
        res.problems.append(f"download: HTTP {got.status_code}")
        return res
    dest.write_bytes(got.content)
    res.output = probe(dest)
    res.problems += check_output(res.output)
    res.ok = not res.problems
    return res


def probe(path: Path) -> dict[str, Any]:
    """What the checks need, measured by decoding the whole file."""
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        info: dict[str, Any] = {
            "bytes": path.stat().st_size,
            "codec": v.codec_context.name,
            "pix_fmt": v.codec_context.pix_fmt,
            "width": v.codec_context.width,
            "height": v.codec_context.height,
            "fps": float(v.average_rate) if v.average_rate else None,
            "audio": bool(c.streams.audio),
        }
        frames, means = 0, []
        for frame in c.decode(video=0):
            if frames % 24 == 0:
                means.append(float(frame.to_ndarray(format="gray").mean()))
            frames += 1
        info["frames"] = frames
        info["luma_means"] = [round(m, 1) for m in means]  # one a second: not all black
    return info


def check_output(info: dict[str, Any]) -> list[str]:
    problems = []
    if info["codec"] != "h264":
        problems.append(f"codec {info['codec']}, not h264")
    if info["fps"] is None or abs(info["fps"] - OUTPUT_FPS) > 1e-3:
        problems.append(f"{info['fps']} fps, not {OUTPUT_FPS}")
    if (info["width"], info["height"]) != OUTPUT_SIZE:
        problems.append(f"size {info['width']}x{info['height']}, not {OUTPUT_SIZE}")
    if info["frames"] != EXPECTED_FRAMES:
        problems.append(f"{info['frames']} frames, not {EXPECTED_FRAMES}")
    if info["luma_means"] and max(info["luma_means"]) < 2:
        problems.append("every sampled frame is black")
    return problems


def run_server(
    name: str,
    env: dict[str, str],
    media: Path,
    edits: list[tuple[str, str, str, str, str]],
    out_dir: Path,
    args: argparse.Namespace,
    timeout: float,
) -> tuple[list[Result], dict[str, Any]]:
    """Start a server, upload the media it needs, run ``edits`` one after another."""
    results: list[Result] = []
    info: dict[str, Any] = {"settings": env}
    try:
        with server(name, env, args.start_timeout) as srv, srv.client() as client:
            info["start_s"] = round(srv.start_s, 1)
            needed = sorted({e[2] for e in edits} | {e[3] for e in edits})
            urls = {f: upload(client, media / f) for f in needed}
            for edit in edits:
                res = run_edit(srv, client, urls, edit, out_dir, timeout)
                results.append(res)
                print(f"[{name}] {line(res)}", flush=True)
                if res.problems:
                    print(f"[{name}] server log:\n{srv.log_tail()}", flush=True)
    except Exception as exc:
        traceback.print_exc()
        info["error"] = f"{type(exc).__name__}: {exc}"
        done = {r.edit for r in results}
        for edit in edits:
            if edit[0] not in done:
                results.append(Result(name, edit[0], edit[1], problems=[info["error"]]))
    return results, info


def line(r: Result) -> str:
    sts = "-" if r.submit_to_success_s is None else f"{r.submit_to_success_s:.2f} s"
    eng = "-" if r.engine_seconds is None else f"{r.engine_seconds:.2f} s"
    verdict = "ok" if r.ok else "FAILED: " + "; ".join(r.problems)
    return (
        f"{r.edit:<9} {r.operation or '-':<16} submit->success {sts:>10}  engine {eng:>10}  "
        f"load {r.load}  {verdict}"
    )


# --- what the run needs -----------------------------------------------------------------


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def machine(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "cores": os.cpu_count()}
    with contextlib.suppress(OSError):
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                info["cpu"] = text.split(":", 1)[1].strip()
                break
    info["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    with contextlib.suppress(ImportError):
        import torch

        info["torch"] = torch.__version__
        if device.startswith("cuda") and torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    with contextlib.suppress(ImportError):
        import diffusers

        info["diffusers"] = diffusers.__version__
    return info


def person_edit_possible() -> str:
    """Why the clothing edit cannot run here, or "" when it can."""
    try:
        import skimage  # noqa: F401  (mediagen's person scene is scikit-image's astronaut)
    except ImportError:
        return "scikit-image is not installed (the generated person clip needs it)"
    from vedit.config import Settings
    from vedit.engines.person.check import missing_person_models

    missing = missing_person_models(Settings().models_dir)
    return f"the person models are missing: {missing}" if missing else ""


def make_media(folder: Path, with_person: bool) -> None:
    from mediagen import bright_wall, make_person_video, make_video, striped_sweater

    make_video(folder / "shapes.mp4", width=640, height=360, fps=25, seconds=SECONDS)
    Image.fromarray(bright_wall(640, 360)).save(folder / "wall.jpg", quality=92)
    Image.fromarray(np.ascontiguousarray(striped_sweater())).save(folder / "sweater.png")
    if with_person:
        make_person_video(folder / "person.mp4", width=640, height=360, fps=24, seconds=SECONDS)


def effective(env: dict[str, str]) -> str:
    """The engine settings a server with ``env`` runs with, vedit's defaults included."""
    from vedit.config import Settings

    fields = Settings.model_fields
    names = ("model_dir", "device", "size", "window", "overlap", "steps", "guidance", "offload")
    shown = []
    for name in (*names, "dtype", "flow_shift"):
        value = env.get(f"VEDIT_VACE_{name.upper()}", fields[f"vace_{name}"].default)
        shown.append(f"VEDIT_VACE_{name.upper()}={value}")
    return " ".join(shown)


def is_tiny(folder: Path) -> bool:
    """A model folder made by tests/tiny_vace.py (its transformer is a few hundred KB)."""
    weights = list((folder / "transformer").glob("*.safetensors"))
    return bool(weights) and sum(p.stat().st_size for p in weights) < 50 * 2**20


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default=os.environ.get("VEDIT_VACE_DEVICE", ""))
    ap.add_argument("--size", default="256x144", help="VEDIT_VACE_SIZE of the tiny runs")
    ap.add_argument("--window", type=int, default=17)
    ap.add_argument("--overlap", type=int, default=4)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--classic", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument(
        "--edits", default="look,style,clothing", help="which edits, in this order (comma list)"
    )
    ap.add_argument(
        "--model-dir",
        type=Path,
        default=os.environ.get("VEDIT_VACE_MODEL_DIR") or None,
        help="a real Wan2.1-VACE model: one 480p edit with it (default: VEDIT_VACE_MODEL_DIR)",
    )
    ap.add_argument("--task-timeout", type=float, default=480.0)
    ap.add_argument("--real-timeout", type=float, default=1800.0)
    ap.add_argument("--start-timeout", type=float, default=300.0)
    ap.add_argument("--keep", type=Path, help="keep the results in this folder")
    ap.add_argument("--json", type=Path, help="write the summary here")
    args = ap.parse_args()

    began = time.perf_counter()
    device = args.device or default_device()
    tmp = Path(tempfile.mkdtemp(prefix="vedit-vacegpu-"))
    out_dir = args.keep or tmp / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"machine": machine(device), "device": device, "servers": {}}
    print(f"machine: {json.dumps(summary['machine'])}; device {device}", flush=True)
    results: list[Result] = []
    try:
        from tiny_vace import build_tiny_vace

        t = time.perf_counter()
        tiny = build_tiny_vace(tmp / "tiny-vace")
        summary["tiny_build_s"] = round(time.perf_counter() - t, 1)
        why_not_person = person_edit_possible()
        if why_not_person:
            print(f"clothing edit skipped: {why_not_person}", flush=True)
            summary["clothing_skipped"] = why_not_person
        by_name = {e[0]: e for e in EDITS}
        edits = [by_name[n] for n in args.edits.split(",")]
        edits = [e for e in edits if e[0] != "clothing" or not why_not_person]
        media = tmp / "media"
        media.mkdir()
        t = time.perf_counter()
        make_media(media, with_person=not why_not_person)
        summary["media_s"] = round(time.perf_counter() - t, 1)

        tiny_env = {
            "VEDIT_ENGINE": "vace",
            "VEDIT_VACE_MODEL_DIR": str(tiny),
            "VEDIT_VACE_DEVICE": device,
            "VEDIT_VACE_SIZE": args.size,
            "VEDIT_VACE_WINDOW": str(args.window),
            "VEDIT_VACE_OVERLAP": str(args.overlap),
            "VEDIT_VACE_STEPS": str(args.steps),
        }
        print(f"tiny model: {effective(tiny_env)}", flush=True)
        runs = [("vace-tiny", tiny_env, edits, args.task_timeout)]
        if args.classic:
            runs.append(("classic", {"VEDIT_ENGINE": "classic"}, edits, args.task_timeout))
        if args.model_dir and not is_tiny(Path(args.model_dir)):
            real_env = {
                "VEDIT_ENGINE": "vace",
                "VEDIT_VACE_MODEL_DIR": str(Path(args.model_dir).expanduser().resolve()),
                "VEDIT_VACE_DEVICE": device,
                "VEDIT_VACE_SIZE": "480p",
                **{
                    f"VEDIT_VACE_{k}": os.environ[f"VEDIT_VACE_{k}"]
                    for k in REAL_KEYS
                    if f"VEDIT_VACE_{k}" in os.environ
                },
            }
            print(f"real model: one 5 s 480p edit; {effective(real_env)}", flush=True)
            runs.append(("vace-real", real_env, edits[:1], args.real_timeout))
        elif args.model_dir:
            print(f"{args.model_dir} is a tiny model: no real-weights edit", flush=True)
        for name, env, todo, timeout in runs:
            got, info = run_server(name, env, media, todo, out_dir, args, timeout)
            results += got
            summary["servers"][name] = info
    except Exception as exc:
        traceback.print_exc()
        summary["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # the results are outside it with --keep
    summary["results"] = [asdict(r) for r in results]
    summary["total_s"] = round(time.perf_counter() - began, 1)
    failed = [r for r in results if not r.ok]
    summary["ok"] = bool(results) and not failed and "error" not in summary

    print()
    print("| server | edit | plan | submit to SUCCESS | engine_seconds | checks |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in results:
        sts = "-" if r.submit_to_success_s is None else f"{r.submit_to_success_s:.2f} s"
        eng = "-" if r.engine_seconds is None else f"{r.engine_seconds:.2f} s"
        checks = "ok" if r.ok else "FAILED: " + "; ".join(r.problems)
        print(f"| {r.server} | {r.edit} | {r.operation or '-'} | {sts} | {eng} | {checks} |")
    for name, info in summary["servers"].items():
        print(f"{name}: {json.dumps(info['settings'])}, ready in {info.get('start_s', '-')} s")
    print(f"total {summary['total_s']} s; {'all ok' if summary['ok'] else 'FAILED'}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"summary: {args.json}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
