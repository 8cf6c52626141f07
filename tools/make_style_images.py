"""Make the style images that vedit's named neural styles are painted after, once.

Each is a CC0 or public-domain photograph from scikit-image's data (``coffee``: CC0,
Rachel Michetti; ``chelsea``: CC0, Stefan van der Walt; ``astronaut``: public domain,
NASA) painted in one medium by a simple procedure written here: watercolour washes that
bleed and pool at their edges on textured paper, oil strokes laid along the picture's
contours with their relief lit, pencil hatching in layers by tone with contours, and
cartoon cels with ink outlines. The style network (``engines/classic/neural.py``) learns
a style from one such picture at 256x256, so that is the size kept. Run by a developer,
never at run time (it needs scikit-image, from the test extra):

    .venv/bin/python tools/make_style_images.py

The images are written to ``src/vedit/engines/classic/assets/style_<name>.png``, the
same for the same code (the procedures draw from a fixed seed).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from skimage import data

SIZE = 512  # painted at this size, kept at KEPT
KEPT = 256
ASSETS = Path(__file__).resolve().parents[1] / "src/vedit/engines/classic/assets"


def _photo(name: str) -> np.ndarray:
    rgb = getattr(data, name)()
    h, w = rgb.shape[:2]
    s = min(h, w)
    rgb = rgb[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    return cv2.resize(rgb, (SIZE, SIZE), interpolation=cv2.INTER_AREA)


def _noise(
    rng: np.random.Generator, scale: int, shape: tuple[int, int] = (SIZE, SIZE)
) -> np.ndarray:
    n = rng.normal(0, 1, (shape[0] // scale + 2, shape[1] // scale + 2)).astype(np.float32)
    n = cv2.resize(n, (shape[1] + 2 * scale, shape[0] + 2 * scale), interpolation=cv2.INTER_CUBIC)
    return n[scale : scale + shape[0], scale : scale + shape[1]]


def _palette(rgb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    z = rgb.reshape(-1, 3).astype(np.float32)
    _, labels, centres = cv2.kmeans(
        z, k, None, (cv2.TERM_CRITERIA_MAX_ITER, 20, 1.0), 3, cv2.KMEANS_PP_CENTERS
    )
    return labels.reshape(rgb.shape[:2]), centres


def watercolor(rng: np.random.Generator) -> np.ndarray:
    rgb = _photo("coffee")
    soft = rgb
    for _ in range(4):
        soft = cv2.bilateralFilter(soft, 9, 40, 7)
    labels, centres = _palette(cv2.GaussianBlur(soft, (0, 0), 3), 10)
    flat = centres[labels].astype(np.float32)
    # bleeding: washes run into each other along their borders, unevenly
    warp = np.dstack([_noise(rng, 24), _noise(rng, 24)]) * 6
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    flat = cv2.remap(
        flat, xx + warp[..., 0], yy + warp[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    flat = cv2.GaussianBlur(flat, (0, 0), 2.0)
    # transparent pigment: lighter than the photo, paper showing in the lights
    wash = 255 - (255 - flat) * 0.7
    # density varies inside each wash; pigment pools at its edges (darker rims)
    edges = cv2.Canny(labels.astype(np.uint8) * 20, 1, 1).astype(np.float32) / 255
    rims = np.clip(cv2.GaussianBlur(edges, (0, 0), 2.5) * 4, 0, 1)
    density = 1 + 0.18 * _noise(rng, 40) + 0.08 * _noise(rng, 6) + rims * 0.35
    pigment = (255 - wash) * density[..., None]
    # granulation and the paper's tooth
    paper = 1 - 0.05 * np.abs(_noise(rng, 2)) - 0.03 * np.abs(_noise(rng, 8))
    out = (255 - pigment) * paper[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def oil_painting(rng: np.random.Generator) -> np.ndarray:
    rgb = _photo("chelsea").astype(np.float32)
    canvas = cv2.GaussianBlur(rgb, (0, 0), 8)
    height = np.zeros((SIZE, SIZE), np.float32)
    grey = cv2.cvtColor(rgb.astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
    for radius in (10, 6, 3):
        ref = cv2.GaussianBlur(rgb, (0, 0), radius * 0.6)
        gx = cv2.Sobel(cv2.GaussianBlur(grey, (0, 0), radius), cv2.CV_32F, 1, 0)
        gy = cv2.Sobel(cv2.GaussianBlur(grey, (0, 0), radius), cv2.CV_32F, 0, 1)
        step = radius
        pts = [(x, y) for y in range(0, SIZE, step) for x in range(0, SIZE, step)]
        rng.shuffle(pts)
        for x, y in pts:
            x = int(min(SIZE - 1, x + rng.integers(0, step)))
            y = int(min(SIZE - 1, y + rng.integers(0, step)))
            diff = np.abs(canvas[y, x] - ref[y, x]).sum()
            if radius < 10 and diff < 25:
                continue
            colour = ref[y, x] * (1 + rng.normal(0, 0.06, 3))
            # along the iso-line (perpendicular to the gradient)
            ang = np.arctan2(gy[y, x], gx[y, x]) + np.pi / 2 + rng.normal(0, 0.2)
            length = radius * rng.uniform(2, 4)
            p0 = (int(x - np.cos(ang) * length / 2), int(y - np.sin(ang) * length / 2))
            p1 = (int(x + np.cos(ang) * length / 2), int(y + np.sin(ang) * length / 2))
            cv2.line(canvas, p0, p1, tuple(float(c) for c in colour), radius, cv2.LINE_AA)
            cv2.line(height, p0, p1, float(rng.uniform(0.5, 1.0)), radius, cv2.LINE_AA)
            cv2.line(height, p0, p1, float(rng.uniform(0.9, 1.3)), max(1, radius // 3), cv2.LINE_AA)
    # impasto: light from the top left over the paint's relief, and the bristles' grooves
    height = cv2.GaussianBlur(height, (0, 0), 1.0) + 0.15 * _noise(rng, 1)
    nx = cv2.Sobel(height, cv2.CV_32F, 1, 0)
    ny = cv2.Sobel(height, cv2.CV_32F, 0, 1)
    shade = 1 + 0.12 * np.clip(-(nx + ny), -3, 3)
    out = canvas * shade[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def pencil_sketch(rng: np.random.Generator) -> np.ndarray:
    rgb = _photo("chelsea")
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255
    grey = cv2.GaussianBlur(grey, (0, 0), 2)
    paper = np.full((SIZE, SIZE), 1.0, np.float32)
    # hatching: layers of parallel strokes, each layer where the tone is darker than its level
    for level, angle in ((0.75, 0.8), (0.55, -0.7), (0.38, 0.1), (0.22, 1.5)):
        layer = np.zeros((SIZE, SIZE), np.float32)
        for _ in range(int(SIZE * SIZE / 180)):
            x, y = rng.uniform(0, SIZE, 2)
            if grey[int(y), int(x)] > level + rng.normal(0, 0.05):
                continue
            a = angle + rng.normal(0, 0.08)
            half = rng.uniform(6, 16)
            p0 = (int(x - np.cos(a) * half), int(y - np.sin(a) * half))
            p1 = (int(x + np.cos(a) * half), int(y + np.sin(a) * half))
            cv2.line(layer, p0, p1, float(rng.uniform(0.25, 0.55)), 1, cv2.LINE_AA)
        paper *= 1 - np.clip(layer, 0, 0.8)
    # contours
    edges = cv2.Canny((grey * 255).astype(np.uint8), 20, 50).astype(np.float32) / 255
    edges = cv2.GaussianBlur(edges, (0, 0), 0.7)
    paper *= 1 - 0.7 * np.clip(edges * 1.5, 0, 1)
    paper *= 1 - 0.04 * np.abs(_noise(rng, 2))
    out = np.clip(paper * 250, 0, 255).astype(np.uint8)
    return cv2.cvtColor(out, cv2.COLOR_GRAY2RGB)


def cartoon(rng: np.random.Generator) -> np.ndarray:
    rgb = _photo("astronaut")
    soft = rgb
    for _ in range(5):
        soft = cv2.bilateralFilter(soft, 9, 60, 9)
    labels, centres = _palette(soft, 8)
    hsv = cv2.cvtColor(centres[None].astype(np.uint8), cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 1] = np.clip(hsv[..., 1] * 1.5 + 30, 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] * 1.1 + 15, 0, 255)
    centres = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0]
    labels = cv2.medianBlur(labels.astype(np.uint8), 7)
    flat = centres[labels]
    ink = cv2.Canny(labels * 30, 1, 1)
    ink = cv2.dilate(ink, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (4, 4)))
    flat[ink > 0] = (20, 16, 24)
    return flat


PAINTERS = {
    "watercolor": watercolor,
    "oil_painting": oil_painting,
    "pencil_sketch": pencil_sketch,
    "cartoon": cartoon,
}

if __name__ == "__main__":
    for name, paint in PAINTERS.items():
        img = cv2.resize(
            paint(np.random.default_rng(2026)), (KEPT, KEPT), interpolation=cv2.INTER_AREA
        )
        path = ASSETS / f"style_{name}.png"
        cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        print(path)
