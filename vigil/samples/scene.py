"""The people_walk scene: a drawn corridor and real people (head-and-shoulders cut-outs of real
photos) walking through it on a fixed script, with the ground truth of every face per frame.

Everything here is deterministic: the same photos give the same frames and the same manifest.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vigil.models.errors import SampleMediaError

WIDTH, HEIGHT, FPS, FRAMES = 1280, 720, 15, 300  # 20 s

# YuNet's face box (x, y, w, h) in each source photo, measured once with the prepared YuNet
# (score >= 0.93 on each). The photos are fixed releases (face_recognition 1.3.0 sdist,
# scikit-image's astronaut.png), so the builder needs no model; the image size guards the match.
SOURCE_FACES: dict[str, tuple[tuple[int, int], tuple[float, float, float, float]]] = {
    "obama2": ((626, 1200), (195.27, 225.19, 275.20, 389.45)),
    "obama3": ((1434, 2333), (638.25, 246.41, 272.01, 367.27)),
    "biden": ((970, 2204), (428.44, 176.54, 277.07, 382.51)),
    "astronaut": ((512, 512), (178.04, 62.56, 90.38, 113.86)),
}

# The cut-out around the face box, in face widths (sides) and face heights (above, below):
# hair and shoulders included, so the detector sees a face in context rather than a tight crop.
MARGIN_SIDE, MARGIN_TOP, MARGIN_BOTTOM = 0.55, 0.40, 0.75
FEATHER = 0.12  # soft edge of the elliptical mask, as a fraction of the cut-out's smaller side


@dataclass(frozen=True)
class Walk:
    """One appearance: who, from which photo, when, where and how large."""

    name: str  # identity: obama / biden / astronaut
    photo: str  # source photo stem (see SOURCE_FACES)
    start: int  # frame at which the cut-out stands just outside the entry edge
    end: int  # frame at which it stands just outside the exit edge
    left_to_right: bool
    face_center_y: float  # the lane: farther lanes are higher up and smaller
    face_height: float  # YuNet box height in the video, pixels


# The script. At most two people on screen at once, each alone for a while; Obama comes back
# (from another photo) after leaving, so a tracker sees two tracks of one identity. People who
# cross walk in different lanes, and nobody's face is ever covered (checked in `script_frames`).
SCRIPT: tuple[Walk, ...] = (
    Walk("obama", "obama2", start=0, end=95, left_to_right=True, face_center_y=360, face_height=140),
    Walk("biden", "biden", start=50, end=165, left_to_right=True, face_center_y=215, face_height=100),
    Walk("astronaut", "astronaut", start=115, end=215, left_to_right=False, face_center_y=430, face_height=115),
    Walk("obama", "obama3", start=190, end=299, left_to_right=False, face_center_y=330, face_height=150),
)
WATCHLIST_NAME = "obama"
WATCHLIST_PHOTO = "obama"  # obama.jpg: the photo to enrol; it appears in no video


@dataclass
class CutOut:
    image: np.ndarray  # (h, w, 3) float32 BGR
    alpha: np.ndarray  # (h, w, 1) float32 0..1
    face: tuple[float, float, float, float]  # face box inside the cut-out


@dataclass(frozen=True)
class FacePlacement:
    frame: int
    box: tuple[float, float, float, float]  # x, y, w, h in video pixels (may reach outside the frame)
    visible: float  # fraction of the face box inside the frame
    origin: tuple[int, int]  # top-left of the cut-out


def cut_out(photo_bgr: np.ndarray, stem: str, face_height: float) -> CutOut:
    """The head-and-shoulders of a photo scaled so its face box is `face_height` tall."""
    size, (fx, fy, fw, fh) = SOURCE_FACES[stem]
    if (photo_bgr.shape[1], photo_bgr.shape[0]) != size:
        raise SampleMediaError(f"photo {stem} is {photo_bgr.shape[1]}x{photo_bgr.shape[0]}, expected {size[0]}x"
                               f"{size[1]}: its source package changed; re-measure SOURCE_FACES in {__file__}")
    x0, x1 = int(fx - MARGIN_SIDE * fw), int(np.ceil(fx + fw + MARGIN_SIDE * fw))
    y0, y1 = int(fy - MARGIN_TOP * fh), int(np.ceil(fy + fh + MARGIN_BOTTOM * fh))
    h, w = photo_bgr.shape[:2]
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    scale = face_height / fh
    out_w, out_h = round((x1 - x0) * scale), round((y1 - y0) * scale)
    # INTER_AREA: shrinking averages, so the face stays sharp without aliasing
    image = cv2.resize(photo_bgr[y0:y1, x0:x1], (out_w, out_h), interpolation=cv2.INTER_AREA)
    alpha = np.zeros((out_h, out_w), np.float32)
    cv2.ellipse(alpha, (out_w // 2, out_h // 2), (out_w // 2 - 2, out_h // 2 - 2), 0, 0, 360, 1.0, -1)
    feather = max(3, int(FEATHER * min(out_w, out_h))) | 1
    alpha = cv2.GaussianBlur(alpha, (feather, feather), 0)
    face = ((fx - x0) * scale, (fy - y0) * scale, fw * scale, fh * scale)
    return CutOut(image.astype(np.float32), alpha[:, :, None], face)


def placements(walk: Walk, cut: CutOut) -> list[FacePlacement]:
    """Where the cut-out is in each frame in which any of it is visible."""
    h, w = cut.alpha.shape[:2]
    fx, fy, fw, fh = cut.face
    entry, exit_ = -w / 2, WIDTH + w / 2  # cut-out centre just outside either edge
    if not walk.left_to_right:
        entry, exit_ = exit_, entry
    out = []
    for frame in range(walk.start, walk.end + 1):
        t = (frame - walk.start) / (walk.end - walk.start)
        cx = entry + (exit_ - entry) * t
        # a gentle head bob of a walker: about two steps per second
        cy = walk.face_center_y + 3.0 * np.sin(2 * np.pi * frame / 7.5)
        ox = round(cx - w / 2)
        oy = round(cy - (fy + fh / 2))  # face centre on the lane
        if ox + w <= 0 or ox >= WIDTH:
            continue
        box = (ox + fx, oy + fy, fw, fh)
        out.append(FacePlacement(frame, box, _visible_fraction(box), (ox, oy)))
    return out


def _visible_fraction(box) -> float:
    x, y, w, h = box
    iw = max(0.0, min(x + w, WIDTH) - max(x, 0.0))
    ih = max(0.0, min(y + h, HEIGHT) - max(y, 0.0))
    return round(iw * ih / (w * h), 4)


def background(textures: dict[str, np.ndarray]) -> np.ndarray:
    """A corridor in one-point perspective: brick walls, a tiled floor, a lit back wall with a door.
    Static, so a tracker sees no flicker; textures come from scikit-image's sample data."""
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    back = (430, 130, 850, 450)  # x0, y0, x1, y1 of the back wall
    bx0, by0, bx1, by1 = back

    def warp(texture: np.ndarray, tint, quad, repeat=(2, 2)) -> None:
        tex = cv2.resize(texture, (texture.shape[1] * repeat[0], texture.shape[0] * repeat[1]))
        tiled = np.tile(tex[:, :, None], (1, 1, 3)).astype(np.float32) * np.float32(tint)
        th, tw = tiled.shape[:2]
        src = np.float32([[0, 0], [tw, 0], [tw, th], [0, th]])
        matrix = cv2.getPerspectiveTransform(src, np.float32(quad))
        warped = cv2.warpPerspective(np.clip(tiled, 0, 255).astype(np.uint8), matrix, (WIDTH, HEIGHT))
        mask = np.zeros((HEIGHT, WIDTH), np.uint8)
        cv2.fillConvexPoly(mask, np.int32(quad), 255)
        frame[mask > 0] = warped[mask > 0]

    # ceiling, floor, walls: quads from the frame's corners to the back wall's corners
    ceiling = [(0, 0), (WIDTH, 0), (bx1, by0), (bx0, by0)]
    floor = [(bx0, by1), (bx1, by1), (WIDTH, HEIGHT), (0, HEIGHT)]
    left = [(0, 0), (bx0, by0), (bx0, by1), (0, HEIGHT)]
    right = [(bx1, by0), (WIDTH, 0), (WIDTH, HEIGHT), (bx1, by1)]
    cv2.fillConvexPoly(frame, np.int32(ceiling), (200, 205, 210))
    warp(textures["gravel"], (0.55, 0.55, 0.6), floor, repeat=(3, 1))
    warp(textures["brick"], (0.55, 0.65, 0.85), [left[1], left[0], left[3], left[2]], repeat=(3, 2))
    warp(textures["brick"], (0.55, 0.65, 0.85), right, repeat=(3, 2))
    cv2.rectangle(frame, (bx0, by0), (bx1, by1), (175, 195, 215), -1)
    cv2.rectangle(frame, (600, 240), (680, by1), (60, 80, 110), -1)  # door
    cv2.rectangle(frame, (600, 240), (680, by1), (40, 50, 70), 3)
    for x in (250, 640, 1030):  # ceiling lights
        cv2.ellipse(frame, (x, 45), (70, 14), 0, 0, 360, (245, 250, 255), -1)
    # light falls off towards the sides, then a slight blur: no hard synthetic edges
    shade = 1.0 - 0.15 * np.abs(np.linspace(-1.0, 1.0, WIDTH, dtype=np.float32))[None, :, None]
    frame = (frame.astype(np.float32) * shade).clip(0, 255).astype(np.uint8)
    return cv2.GaussianBlur(frame, (5, 5), 0)


def script_frames(photos: dict[str, np.ndarray], textures: dict[str, np.ndarray]) -> tuple[
        list[tuple[Walk, list[FacePlacement]]], Iterator[np.ndarray]]:
    """The ground truth of every walk, and a generator of the frames (BGR uint8) in order."""
    bg = background(textures)
    cuts = [cut_out(photos[walk.photo], walk.photo, walk.face_height) for walk in SCRIPT]
    truth = [(walk, placements(walk, cut)) for walk, cut in zip(SCRIPT, cuts)]
    _check_script(truth, cuts)
    # far (small) people first, so nearer ones pass in front
    order = sorted(range(len(SCRIPT)), key=lambda i: SCRIPT[i].face_height)
    by_frame = [{p.frame: p for p in truth[i][1]} for i in range(len(SCRIPT))]

    def frames() -> Iterator[np.ndarray]:
        for frame in range(FRAMES):
            canvas = bg.copy()
            for i in order:
                placement = by_frame[i].get(frame)
                if placement is not None:
                    _blend(canvas, cuts[i], placement.origin)
            yield canvas

    return truth, frames()


def _blend(canvas: np.ndarray, cut: CutOut, origin: tuple[int, int]) -> None:
    ox, oy = origin
    h, w = cut.alpha.shape[:2]
    x0, y0, x1, y1 = max(ox, 0), max(oy, 0), min(ox + w, WIDTH), min(oy + h, HEIGHT)
    if x0 >= x1 or y0 >= y1:
        return
    a = cut.alpha[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
    roi = canvas[y0:y1, x0:x1].astype(np.float32)  # blend only where the cut-out lies
    roi = roi * (1.0 - a) + a * cut.image[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
    canvas[y0:y1, x0:x1] = (roi + 0.5).clip(0, 255).astype(np.uint8)


def _check_script(truth, cuts) -> None:
    """Guard the script's promises: two people at most at once, and no face covered by the
    cut-out of anyone drawn after it (nearer people are drawn later)."""
    on_screen: dict[int, list[int]] = {}
    for i, (_, placed) in enumerate(truth):
        for p in placed:
            on_screen.setdefault(p.frame, []).append(i)
    for frame, people in on_screen.items():
        if len(people) > 2:
            raise AssertionError(f"frame {frame}: {len(people)} people on screen")
        for i in people:
            for j in people:
                if SCRIPT[j].face_height <= SCRIPT[i].face_height or i == j:
                    continue
                pi = next(p for p in truth[i][1] if p.frame == frame)
                pj = next(p for p in truth[j][1] if p.frame == frame)
                h, w = cuts[j].alpha.shape[:2]
                x, y, fw, fh = pi.box
                ox, oy = pj.origin
                if x < ox + w and ox < x + fw and y < oy + h and oy < y + fh:
                    raise AssertionError(f"frame {frame}: {SCRIPT[j].photo} covers the face of {SCRIPT[i].photo}")


def load_textures() -> dict[str, np.ndarray]:
    from skimage import data

    return {"brick": data.brick(), "gravel": data.gravel()}


def astronaut_bgr() -> np.ndarray:
    from skimage import data

    return np.ascontiguousarray(data.astronaut()[:, :, ::-1])


def read_photo(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SampleMediaError(f"cannot read photo {path}: delete it and rebuild the sample media")
    return image
