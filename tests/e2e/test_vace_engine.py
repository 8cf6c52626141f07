"""Engine vace end to end: a real ``vedit serve`` with ``VEDIT_ENGINE=vace`` and a tiny
random-weight Wan2.1-VACE model made in the test (tests/tiny_vace.py; nothing downloaded),
real tasks through the API, real outputs probed frame by frame."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from test_dashscope_dialect import ds_body, ds_create, ds_query, ds_wait

from conftest import VeditServer
from mediagen import make_person_video, make_video, probe_output, read_frames, striped_sweater
from tiny_vace import build_tiny_vace, require_vace

SETTINGS = {
    "VEDIT_ENGINE": "vace",
    "VEDIT_VACE_DEVICE": "cpu",
    "VEDIT_VACE_SIZE": "128x80",  # the person models look at 576x360 frames all the same
    "VEDIT_VACE_WINDOW": "17",
    "VEDIT_VACE_OVERLAP": "4",
    "VEDIT_VACE_STEPS": "3",
}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_vace()
    return build_tiny_vace(tmp_path_factory.mktemp("vace") / "Wan2.1-VACE-tiny")


@pytest.fixture(scope="module")
def vace(tmp_path_factory: pytest.TempPathFactory, media, tiny_model: Path):
    """One vace server for the module (its one worker keeps the model loaded)."""
    srv = VeditServer(
        tmp_path_factory.mktemp("vace-serve"),
        {"VEDIT_MEDIA_ALLOW": media.hostport, "VEDIT_VACE_MODEL_DIR": str(tiny_model), **SETTINGS},
        workers=1,
    )
    srv.start()
    yield srv
    srv.stop()


LOOK_CLIP = "vace-look.mp4"
LOOKS: dict[int, str] = {}  # seed -> the look's result's sha256, made by the first test


@pytest.fixture(scope="module", autouse=True)
def look_clip(media_dir: Path) -> None:
    make_video(media_dir / LOOK_CLIP, width=640, height=360, fps=25, seconds=3.5)


@pytest.fixture(scope="module")
def person(media_dir: Path) -> tuple[str, str]:
    make_person_video(media_dir / "vace-person.mp4", width=640, height=360, seconds=3)
    cv2.imwrite(str(media_dir / "sweater.png"), cv2.cvtColor(striped_sweater(), cv2.COLOR_RGB2BGR))
    return "vace-person.mp4", "sweater.png"


def _edit(srv: VeditServer, media, video: str, image: str, prompt: str, seed: int = 5) -> dict:
    task_id = srv.submit(
        media.url(video), media.url(image), prompt, watermark=False, seed=seed, resolution="720P"
    )
    data = srv.wait(task_id, timeout=300)
    assert data["status"] == "SUCCESS", (data["fail_reason"], srv.log()[-3000:])
    return data


def _changed(source: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Where the output differs from the source by more than the codec's noise."""
    diff = np.abs(source.astype(np.int16) - out.astype(np.int16)).max(axis=2)
    return cv2.medianBlur((diff > 24).astype(np.uint8), 5).astype(bool)


def test_a_look_runs_the_model_window_by_window_into_the_contract(
    vace, media, media_dir, tmp_path
) -> None:
    # LOOK_CLIP: 3.5 s, 25 fps, 640x360 with audio -> 84 output frames at 24 fps, made from
    # 56 frames at the model's 16 fps: windows of 17 sharing 4 -> 0-16, 13-29, 26-42, 39-55.
    data = _edit(vace, media, LOOK_CLIP, "coffee.jpg", "give it the colours of the photo")
    out = vace.download(data["result_url"], tmp_path / "out.mp4")
    LOOKS[5] = hashlib.sha256(out.read_bytes()).hexdigest()
    info = probe_output(out)
    assert (info["width"], info["height"], info["fps"], info["frames"]) == (1280, 720, 24, 84)
    assert info["audio"]["codec"] == "aac" and info["audio"]["duration"] == pytest.approx(
        3.5, abs=0.05
    )
    assert "engine vace" in info["metadata"]["comment"]
    plan = data["data"]["output"]["edit_plan"]
    assert plan["operation"] == "color_grade" and plan["applied"] is True
    log = vace.log()
    task_id = data["task_id"]
    assert f"engine vace: task {task_id}: 56 frames at 16 fps, 128x80, in 4 window(s)" in log
    windows = re.findall(
        rf"task {task_id}: window (\d)/4: frames (\d+)-(\d+) \((\d+) shared, (\d+) run\)", log
    )
    assert windows == [
        ("1", "0", "16", "0", "17"),
        ("2", "13", "29", "4", "17"),
        ("3", "26", "42", "4", "17"),
        ("4", "39", "55", "4", "17"),
    ]
    # The look regenerates the whole frame (the tiny model's frames are not the source's).
    source = read_frames(media_dir / LOOK_CLIP, [40])[0]
    made = read_frames(out, [60])[0]
    assert _changed(cv2.resize(source, (1280, 720)), made).mean() > 0.9
    # 16 fps to 24: output frames 0, 1, 2 show clip frames 0, 1, 1 (nearest in time).
    f0, f1, f2 = read_frames(out, [0, 1, 2])
    assert np.abs(f1.astype(int) - f2).mean() < 2 < np.abs(f0.astype(int) - f1).mean()


def test_one_seed_makes_the_same_video_and_another_seed_another(vace, media, tmp_path) -> None:
    digests = []
    for seed in (5, 6) if 5 in LOOKS else (5, 5, 6):  # seed 5's first run: the test above
        data = _edit(vace, media, LOOK_CLIP, "coffee.jpg", "give it the colours of the photo", seed)
        out = vace.download(data["result_url"], tmp_path / f"{len(digests)}.mp4")
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
    first, again, other = [LOOKS[5], *digests] if 5 in LOOKS else digests
    assert first == again != other


def test_person_edits_regenerate_only_their_region(
    vace, media, media_dir, person, tmp_path
) -> None:
    video, sweater = person
    source = read_frames(media_dir / video, [36])[0]
    source = cv2.resize(source, (1280, 720))
    changed = {}
    for prompt in (
        "make her wear the striped sweater in the image",
        "replace the background with the image",
    ):
        data = _edit(vace, media, video, sweater, prompt)  # refused without the person models
        plan = data["data"]["output"]["edit_plan"]
        assert plan["operation"] != "color_grade", plan
        assert plan["applied"] is True and (plan["person_frame_share"] or 0) > 0.9, plan
        out = vace.download(data["result_url"], tmp_path / "out.mp4")
        changed[plan["operation"]] = _changed(source, read_frames(out, [36])[0])
    clothing, background = changed["restyle_clothing"], changed["replace_background"]
    # The garment: a part of her (her chest), nothing far from her.
    assert 0.01 < clothing.mean() < 0.2
    # The background: all but her; what stays is where she is, and her garment lies in it.
    assert 0.5 < background.mean() < 0.97
    kept = ~background
    assert (clothing & kept).sum() > 0.5 * clothing.sum()
    # Her face (above the garment, inside what the background edit kept) is the source's.
    rows = np.flatnonzero(kept.any(axis=1))
    top = kept[rows[0] : rows[0] + 40]
    assert not (clothing[rows[0] : rows[0] + 40] & top).any()


def test_without_the_person_models_a_person_edit_is_refused_saying_what_is_missing(
    make_server, media, tiny_model: Path, person, tmp_path
) -> None:
    """No edit claimed that could not be checked: with the mediapipe wheel absent (an empty
    package of that name shadows it), a clothing or background edit fails at once, before
    any fetch or model load, saying what is missing; the worker warned at start."""
    shadow = tmp_path / "shadow"
    (shadow / "mediapipe").mkdir(parents=True)
    (shadow / "mediapipe" / "__init__.py").write_text("")
    srv = make_server(
        {
            "PYTHONPATH": os.pathsep.join([str(shadow), os.environ.get("PYTHONPATH", "")]),
            "VEDIT_VACE_MODEL_DIR": str(tiny_model),
            **SETTINGS,
        },
        workers=1,
    )
    video, sweater = person
    for prompt, what in [
        ("make her wear the striped sweater in the image", "restyle the clothing"),
        ("replace the background with the image", "replace the background"),
    ]:
        task_id = srv.submit(media.url(video), media.url(sweater), prompt, resolution="720P")
        data = srv.wait(task_id, timeout=60)
        assert data["status"] == "FAILURE", data
        assert data["data"]["output"]["code"] == "InternalError.ModelUnavailable"
        assert data["fail_reason"].startswith(
            f"engine vace cannot {what} on this server: the person models it needs are not "
            "installed (its operator installs them with pip install --no-deps mediapipe==0.10.21"
        ), data["fail_reason"]
        assert data["data"]["output"].get("edit_plan") is None
    log = srv.log()
    assert "engine vace: background and clothing edits need the person models, and tasks " in log
    assert "loaded on" not in log and "window(s)" not in log  # the model never ran


def test_every_reference_image_of_the_dashscope_dialect_reaches_the_model(vace, media) -> None:
    r = ds_create(
        vace, ds_body(media.url(LOOK_CLIP), media.url("coffee.jpg"), media.url("astronaut.png"),
                      prompt="cartoon style", watermark=False, resolution="720P"),
    )  # fmt: skip
    assert r.status_code == 200, r.text
    done = ds_wait(vace, r.json()["output"]["task_id"], timeout=300)
    assert done["output"]["task_status"] == "SUCCEEDED", done
    assert done["output"]["edit_plan"]["operation"] == "stylize"
    assert re.search(r"3 step\(s\), 2 reference image\(s\); prompt: The same scene, people "
                     r"and movements, drawn as a cartoon .* in the colours of the reference "
                     r"image\. cartoon style", vace.log())  # fmt: skip


def test_progress_rises_with_the_steps_and_a_cancel_stops_the_model(vace, media) -> None:
    # long.mp4: 20 s in, 15 s out: 240 frames at 16 fps, 19 windows: long enough to watch.
    task_id = vace.submit(media.url("long.mp4"), media.url("coffee.jpg"), "sepia film look")
    seen: list[int] = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len({p for p in seen if 10 < p < 98}) < 3:
        data = vace.query(task_id).json()["data"]
        assert data["status"] not in ("SUCCESS", "FAILURE"), data
        seen.append(int(data["progress"].rstrip("%") or 0))
        time.sleep(0.1)
    assert len({p for p in seen if 10 < p < 98}) >= 3, seen
    assert seen == sorted(seen), "progress only rises"
    r = vace.client.post(f"/api/v1/tasks/{task_id}/cancel", headers=vace.headers())
    assert r.status_code == 200, r.text
    cancelled_at = time.monotonic()
    while ds_query(vace, task_id)["output"]["task_status"] != "CANCELED":
        assert time.monotonic() - cancelled_at < 30
        time.sleep(0.1)
    # The worker stopped between steps and went on: the next task runs and succeeds.
    pattern = rf"task {task_id} finished: CANCELED"
    deadline = time.monotonic() + 30
    while not re.search(pattern, vace.log()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert re.search(pattern, vace.log()), vace.log()[-3000:]
    assert _edit(vace, media, LOOK_CLIP, "coffee.jpg", "watercolor")["status"] == "SUCCESS"


def test_a_worker_asked_to_stop_hands_its_task_back_between_steps(vace, media) -> None:
    task_id = vace.submit(
        media.url("long.mp4"), media.url("coffee.jpg"), "sepia film look", resolution="720P"
    )
    deadline = time.monotonic() + 240
    while int(vace.query(task_id).json()["data"]["progress"].rstrip("%") or 0) <= 15:
        assert time.monotonic() < deadline, vace.log()[-3000:]
        time.sleep(0.1)
    ((first,),) = vace.db("select worker_id from tasks where id = ?", task_id)
    os.kill(int(first.rsplit(":", 1)[1]), signal.SIGTERM)  # as systemd or docker stop would
    # Between two steps the model stops, the task goes back to the queue with its attempt
    # unspent, and the worker started in its place takes it up.
    while not re.search(rf"task {task_id} finished: requeued", vace.log()):
        assert time.monotonic() < deadline, vace.log()[-3000:]
        time.sleep(0.2)
    while True:
        ((worker, attempts, status),) = vace.db(
            "select worker_id, attempts, status from tasks where id = ?", task_id
        )
        if worker not in (None, first) and status == "running":
            break
        assert time.monotonic() < deadline, (worker, status, vace.log()[-3000:])
        time.sleep(0.2)
    assert attempts == 1
    r = vace.client.post(f"/api/v1/tasks/{task_id}/cancel", headers=vace.headers())
    assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("break_it", "said"),
    [
        (lambda d: shutil.rmtree(d), "no such folder"),
        (lambda d: [p.unlink() for p in (d / "transformer").glob("*.safetensors")],
         "missing transformer/ weights (*.safetensors)"),
        (lambda d: (d / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(
            b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n"),
         "a git-lfs pointer"),
    ],
)  # fmt: skip
def test_a_wrong_model_folder_stops_serve_at_start(
    make_server, tiny_model: Path, tmp_path, break_it, said
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    break_it(folder)
    with pytest.raises(RuntimeError, match="vedit serve exited") as failed:
        make_server({"VEDIT_VACE_MODEL_DIR": str(folder), **SETTINGS}, workers=1)
    message = str(failed.value)
    assert f"vedit: the workers cannot start: VEDIT_VACE_MODEL_DIR={folder}" in message, message
    assert said in message and "Traceback" not in message, message


def test_engine_vace_is_imported_only_when_chosen() -> None:
    """The plain install's worker path never imports torch or diffusers."""
    code = (
        "import sys, vedit.runtime.run, vedit.engines.clip, vedit.engines.base\n"
        "from vedit.config import Settings\n"
        "from vedit.engines import load_engine\n"
        "load_engine('classic', Settings())\n"
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stderr
