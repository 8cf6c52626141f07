"""Background replacement and clothing on scenes with a known ground truth, through real MP4s.

The scene (``mediagen.person_scene``): scikit-image's astronaut, cut out along her
outline, slides across a photograph while the camera pans. Every pixel is known to be
person or not, so the edit is judged pixel by pixel on the decoded output.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from mediagen import (
    ASTRONAUT_CHEST,
    ASTRONAUT_FACE,
    bright_wall,
    camera_offset,
    edit_video,
    make_person_video,
    person_scene,
    read_frames,
    striped_sweater,
)
from vedit.engines.person import pose as bp
from vedit.engines.person.background import BackgroundEditor, cover
from vedit.engines.person.clothing import ClothingEditor, hand_mask, upright

W, H, FPS = 1280, 720, 24
SAMPLES = list(range(0, 72, 6))
RING = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (17, 17))  # 8 px either side of the edge


def edit(
    tmp_path: Path, editor_of, *, camera: str = "pan", walk: bool = True, noise: float = 0.0
) -> Path:
    """The person scene, made and edited by ``editor_of(width, height)`` at 720P."""
    src = make_person_video(tmp_path / f"{camera}.mp4", camera=camera, walk=walk, noise=noise)
    out = tmp_path / f"{camera}-edited.mp4"
    spec = edit_video(src, out, lambda spec: editor_of(spec.width, spec.height))
    assert (spec.width, spec.height) == (W, H)
    return out


def box_mask(box: tuple[int, int, int, int], where: tuple[int, int, float]) -> np.ndarray:
    """A box of the astronaut photo, placed in the frame as the scene placed the photo."""
    x0, y0, scale = where
    mask = np.zeros((H, W), bool)
    bx0, by0, bx1, by1 = (round(v * scale) for v in box)
    mask[y0 + by0 : y0 + by1, x0 + bx0 : x0 + bx1] = True
    return mask


@pytest.fixture(scope="module")
def replaced(tmp_path_factory: pytest.TempPathFactory) -> tuple[BackgroundEditor, Path]:
    """The panning scene with its background replaced by a launch pad at dusk."""
    editor = BackgroundEditor(data.rocket(), W, H)
    return editor, edit(tmp_path_factory.mktemp("bg"), lambda w, h: editor)


def test_background_replacement_moves_the_background_and_keeps_the_person(replaced) -> None:
    editor, out = replaced
    mx, my = editor.margin
    room = cover(data.rocket(), W + 2 * mx, H + 2 * my).astype(float)
    start = camera_offset(W, H, 0)
    moved_bg, moved_person = [], []
    for i, got in zip(SAMPLES, read_frames(out, SAMPLES), strict=True):
        frame, truth, _ = person_scene(W, H, i)
        # Where the new background should be: moved as the camera moved, inside the margin.
        cam = camera_offset(W, H, i)
        x = int(np.clip(mx + cam[0] - start[0], 0, 2 * mx))
        y = int(np.clip(my + cam[1] - start[1], 0, 2 * my))
        target = room[y : y + H, x : x + W]
        before = np.linalg.norm(frame - target, axis=2)
        after = np.linalg.norm(got - target, axis=2)
        moved = after < 0.5 * before  # at least halfway to the reference
        telling = before > 30  # pixels already like the reference say nothing
        person = (cv2.erode(truth.astype(np.uint8), RING) > 0) & telling
        background = (cv2.dilate(truth.astype(np.uint8), RING) == 0) & telling
        moved_bg.append(moved[background])
        moved_person.append(moved[person])
    bg_share = float(np.concatenate(moved_bg).mean())
    person_share = float(np.concatenate(moved_person).mean())
    print(f"background moved {bg_share:.1%}, person moved {person_share:.1%}")  # pytest -s
    assert bg_share >= 0.90, bg_share
    assert person_share <= 0.05, person_share


def test_the_new_background_pans_with_the_camera(replaced) -> None:
    _, out = replaced
    a, b = read_frames(out, [6, 18])
    top = slice(0, 64)  # above the person's head in every frame: only background
    grey_a = cv2.cvtColor(a[top], cv2.COLOR_RGB2GRAY).astype(np.float32)
    grey_b = cv2.cvtColor(b[top], cv2.COLOR_RGB2GRAY).astype(np.float32)
    (shift_x, _), _ = cv2.phaseCorrelate(grey_a, grey_b)
    # The source's camera moved right, so its room slid left in the frame; the new scene too.
    pan = camera_offset(W, H, 18)[0] - camera_offset(W, H, 6)[0]
    print(f"camera pan {pan} px, new background {-shift_x:.1f} px")  # pytest -s
    assert pan > 40
    assert abs(shift_x + pan) <= 4, (shift_x, pan)


def luma(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(rgb.astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(float)


def test_the_edge_has_no_halo_of_a_dark_old_background(tmp_path) -> None:
    """A person before a dark room, put before a bright wall: just outside her true outline
    the output is the wall — no band of the old room, darker than both sides — and just
    inside it she is as she was (the edge is not cut into her)."""
    kw = {"camera": "static", "room": "dark"}
    src = make_person_video(tmp_path / "dark.mp4", **kw)
    out = tmp_path / "dark-edited.mp4"
    editors: list[BackgroundEditor] = []
    edit_video(
        src, out, lambda spec: editors.append(BackgroundEditor(bright_wall(), W, H)) or editors[0]
    )
    mx, my = editors[0].margin
    wall = luma(cover(bright_wall(), W + 2 * mx, H + 2 * my)[my : my + H, mx : mx + W])
    ring_out, ring_in = [], []
    for i, got in zip(SAMPLES[1:], read_frames(out, SAMPLES[1:]), strict=True):
        frame, truth, _ = person_scene(W, H, i, **kw)
        away = cv2.distanceTransform((~truth).astype(np.uint8), cv2.DIST_L2, 5)
        depth = cv2.distanceTransform(truth.astype(np.uint8), cv2.DIST_L2, 5)
        ring_out.append((luma(got) - wall)[(away > 2) & (away <= 8)])
        ring_in.append(np.abs(luma(got) - luma(frame))[(depth > 3) & (depth <= 8)])
    outside, inside = np.concatenate(ring_out), np.concatenate(ring_in)
    print(f"2-8 px outside: {outside.mean():+.1f} levels from the wall "
          f"(90th pct |.| {np.percentile(np.abs(outside), 90):.0f}); "
          f"3-8 px inside: {inside.mean():.1f} from the source (median {np.median(inside):.0f})")  # fmt: skip
    assert abs(outside.mean()) <= 12, outside.mean()  # the feathered edge was -70
    assert np.percentile(np.abs(outside), 90) <= 40
    assert np.median(inside) <= 25, np.median(inside)


def test_clothing_changes_the_torso_not_the_face_or_the_background(tmp_path) -> None:
    out = edit(tmp_path, lambda w, h: ClothingEditor(striped_sweater(), w, h))
    chest, face, background = [], [], []
    for i, got in zip(SAMPLES[1:], read_frames(out, SAMPLES[1:]), strict=True):
        frame, truth, where = person_scene(W, H, i)
        changed = np.abs(got.astype(int) - frame).max(axis=2) > 24
        chest.append(changed[box_mask(ASTRONAUT_CHEST, where)])
        face.append(changed[box_mask(ASTRONAUT_FACE, where)])
        background.append(changed[cv2.dilate(truth.astype(np.uint8), RING) == 0])
    chest_share = float(np.concatenate(chest).mean())
    face_share = float(np.concatenate(face).mean())
    bg_share = float(np.concatenate(background).mean())
    print(f"changed: chest {chest_share:.1%}, face {face_share:.1%}, background {bg_share:.1%}")
    assert chest_share >= 0.6, chest_share
    assert face_share <= 0.03, face_share
    assert bg_share <= 0.03, bg_share


def test_the_garment_stays_on_the_body(tmp_path) -> None:
    """She walks along a table whose top touches her outline, the camera panning: the stripes
    stay inside her outline — at most 1 % of the changed pixels lie more than 2 px outside it
    (the codec's own ringing is within 2 px) — and never on the table or the cup."""
    kw = {"camera": "pan", "table": True}
    src = make_person_video(tmp_path / "table.mp4", **kw)
    out = tmp_path / "table-edited.mp4"
    edit_video(src, out, lambda spec: ClothingEditor(striped_sweater(), spec.width, spec.height))
    outside = changed = 0
    before_after = zip(read_frames(src, SAMPLES[1:]), read_frames(out, SAMPLES[1:]), strict=True)
    for i, (before, got) in zip(SAMPLES[1:], before_after, strict=True):
        _, truth, _ = person_scene(W, H, i, **kw)
        diff = np.abs(got.astype(int) - before).max(axis=2) > 24
        away = cv2.distanceTransform((~truth).astype(np.uint8), cv2.DIST_L2, 5)
        outside += int(np.count_nonzero(diff & (away > 2)))
        changed += int(np.count_nonzero(diff))
    print(f"changed pixels more than 2 px outside her outline: {outside / changed:.2%}")
    assert changed > 50_000 * len(SAMPLES[1:])  # she is dressed
    assert outside / changed <= 0.01, outside / changed  # 5.0 % before the outline and the matte


def test_hands_in_front_of_the_body_keep_their_own_colours() -> None:
    """A hand the pose model sees (wrist and knuckles) gets no garment; one it does not see
    changes nothing."""
    points = np.zeros((33, 2), np.float32)
    seen = np.zeros(33, np.float32)
    points[bp.LEFT_WRIST], points[bp.LEFT_INDEX] = (100, 100), (110, 100)
    points[bp.RIGHT_WRIST], points[bp.RIGHT_INDEX] = (50, 150), (60, 150)
    seen[[bp.LEFT_WRIST, bp.LEFT_INDEX]] = 0.9
    hands = hand_mask(points, seen, (200, 200))
    assert hands[100, 105] == 1 and hands[100, 118] == 1  # the hand and its fingers
    assert hands[100, 135] == 0 and hands[150, 55] == 0  # past it; the unseen hand


def test_a_hand_the_pose_model_guesses_on_a_garment_is_not_kept_out() -> None:
    """The pose model reports hands it cannot see (below the frame), often on the chest: with
    the skin mask, a hand counts only where its disc is skin-coloured (carphone frame 30 had
    two discs cut out of the garment), and no disc is wider than 0.35 shoulder widths."""
    points = np.zeros((33, 2), np.float32)
    seen = np.zeros(33, np.float32)
    points[bp.LEFT_SHOULDER], points[bp.RIGHT_SHOULDER] = (40, 40), (160, 40)
    points[bp.LEFT_WRIST], points[bp.LEFT_INDEX] = (100, 100), (110, 100)
    points[bp.RIGHT_WRIST], points[bp.RIGHT_INDEX] = (60, 150), (100, 150)  # a long "hand"
    seen[[bp.LEFT_WRIST, bp.LEFT_INDEX, bp.RIGHT_WRIST, bp.RIGHT_INDEX]] = 0.9
    skin = np.zeros((200, 200), np.float32)
    skin[90:112, 95:118] = 1.0  # only the left hand is skin-coloured
    hands = hand_mask(points, seen, (200, 200), skin)
    assert hands[100, 105] == 1  # the real hand
    assert hands[150, 80] == 0  # the guess on the (not skin-coloured) garment
    skin[:] = 1.0
    hands = hand_mask(points, seen, (200, 200), skin)
    assert hands[150, 80] == 1 and hands[150, 80 + 45] == 0  # capped at 0.35 x 120 px = 42


def test_only_an_upright_skeleton_is_dressed() -> None:
    """bikes' rider, laid on his side by the pose model (shoulders and hips level), is not
    dressed; a standing one is."""
    points = np.zeros((33, 2), np.float32)
    points[bp.NOSE] = (100, 20)
    points[bp.LEFT_SHOULDER], points[bp.RIGHT_SHOULDER] = (130, 60), (70, 60)
    points[bp.LEFT_HIP], points[bp.RIGHT_HIP] = (120, 160), (80, 160)
    assert upright(points)
    lying = points.copy()
    lying[bp.LEFT_HIP], lying[bp.RIGHT_HIP] = (290, 70), (280, 50)
    assert not upright(lying)


def test_the_garment_takes_the_reference_colours_and_keeps_the_folds() -> None:
    frame, truth, where = person_scene(W, H, 12)
    from vedit.media.frames import YuvFrame, yuv_planes, yuv_to_rgb

    editor = ClothingEditor(striped_sweater(), W, H)
    for index in range(3):  # the mask settles over a few frames
        yuv = YuvFrame(*yuv_planes(frame, "bt709"), "bt709")
        editor(yuv, index)
    full = [cv2.resize(p, (W, H)) for p in (yuv.u, yuv.v)]
    got = yuv_to_rgb(cv2.merge([yuv.y, *full]), "bt709").astype(float)
    chest = box_mask(ASTRONAUT_CHEST, where)
    orange = frame[chest].mean(0)
    new = got[chest]
    # The suit's orange is gone: the chest is now navy and cream, like the reference (both far
    # less warm than the orange: red over blue falls; and bluer).
    assert (new[:, 0] - new[:, 2]).mean() < (orange[0] - orange[2]) - 80
    assert new[:, 2].mean() > orange[2] + 40  # more blue
    # The folds stay: the source's luma detail is still in the new garment.
    grey_in = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(float)
    grey_out = cv2.cvtColor(got.astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(float)
    detail_in = grey_in - cv2.GaussianBlur(grey_in, (0, 0), 3)
    detail_out = grey_out - cv2.GaussianBlur(grey_out, (0, 0), 3)
    inner = chest & truth
    assert np.corrcoef(detail_in[inner], detail_out[inner])[0, 1] > 0.3


@pytest.mark.parametrize("operation", ["background", "clothing"])
def test_person_edits_do_not_flicker(tmp_path, operation: str) -> None:
    """A still person before a still camera: every pixel is static, the edited ones too."""
    if operation == "background":

        def editor_of(w, h):
            return BackgroundEditor(data.rocket(), w, h)
    else:

        def editor_of(w, h):
            return ClothingEditor(striped_sweater(), w, h)

    out = edit(tmp_path, editor_of, camera="static", walk=False, noise=3.0)
    src = tmp_path / "static.mp4"
    _, truth, where = person_scene(W, H, 0, camera="static", walk=False)
    edited = box_mask(ASTRONAUT_CHEST, where) if operation == "clothing" else ~truth
    for i in (20, 41, 62):
        a, b = read_frames(src, [i, i + 1])
        c, d = read_frames(out, [i, i + 1])
        flicker_in = np.abs(a.astype(int) - b)[edited].mean()
        flicker_out = np.abs(c.astype(int) - d)[edited].mean()
        assert flicker_in > 0.5  # the camera's noise is there to begin with
        print(f"{operation} flicker at {i}: edited {flicker_out:.2f} vs input {flicker_in:.2f}")
        assert flicker_out <= 1.5 * flicker_in, (i, flicker_in, flicker_out)
        # The person's edge holds still too: no shimmer where the mask is feathered.
        edge = (cv2.dilate(truth.astype(np.uint8), RING) > 0) & (
            cv2.erode(truth.astype(np.uint8), RING) == 0
        )
        edge_in = np.abs(a.astype(int) - b)[edge].mean()
        edge_out = np.abs(c.astype(int) - d)[edge].mean()
        print(f"{operation} edge flicker at {i}: {edge_out:.2f} vs input {edge_in:.2f}")
        assert edge_out <= 1.5 * edge_in, (i, edge_in, edge_out)
