"""Still-image detection's geometry without a network: the windows cover every face size the
photo can hold, faces cut by a tile's edge are dropped, and the windows' faces merge into one each."""

from __future__ import annotations

import numpy as np
import pytest

from vigil.models.detection import (
    MIN_CANVAS_FACE,
    SCORE,
    TILE_OVERLAP,
    Window,
    in_window,
    merge_windows,
    still_windows,
    window_canvas,
)

CANVAS = (640, 640)


def _row(x, y, w, h, score=0.95) -> np.ndarray:
    row = np.zeros(15)
    row[:4] = x, y, w, h
    row[4:14] = np.tile([x + w / 2, y + h / 2], 5)
    row[SCORE] = score
    return row


@pytest.mark.parametrize("size", [(4000, 3000), (1280, 886), (500, 2000), (300, 200)])
def test_windows_reach_the_smallest_face_and_cover_the_image(size):
    width, height = size
    windows = still_windows(size, CANVAS, min_face=40)
    whole = windows[0]
    assert (whole.x, whole.y, whole.width, whole.height) == (0, 0, width, height)
    assert whole.scale == pytest.approx(min(640 / width, 640 / height))
    finest = max(w.scale for w in windows)
    assert finest * 40 >= MIN_CANVAS_FACE - 1e-9
    for scale in {w.scale for w in windows}:
        level = [w for w in windows if w.scale == scale]
        covered = np.zeros((height, width), bool)
        for w in level:
            assert w.width * scale <= 640 + 1e-6 and w.height * scale <= 640 + 1e-6  # fits the canvas
            covered[w.y:w.y + w.height, w.x:w.x + w.width] = True
        assert covered.all(), f"level {scale} leaves pixels out"
        # neighbouring tiles share at least TILE_OVERLAP canvas pixels: a face that size is whole in one
        xs = sorted({w.x for w in level})
        for a, b in zip(xs, xs[1:]):
            assert (a + level[0].width - b) * scale >= TILE_OVERLAP - 1


def test_window_canvas_scales_the_window_into_the_corner():
    image = np.zeros((1000, 1000, 3), np.uint8)
    image[500:600, 300:400] = 255
    canvas = window_canvas(image, Window(200, 400, 400, 400, 1.5), CANVAS)
    assert canvas.shape == (640, 640, 3)
    ys, xs = np.nonzero(canvas[:, :, 0] > 127)
    assert (xs.min(), ys.min()) == pytest.approx((150, 150), abs=2)  # (300-200)*1.5, (500-400)*1.5
    assert (xs.max(), ys.max()) == pytest.approx((300, 300), abs=2)


def test_faces_cut_by_an_inner_tile_edge_are_dropped():
    window = Window(1000, 0, 500, 500, 1.0)  # inner edges: left, right, bottom (top is the image's)
    rows = np.stack([
        _row(1, 100, 60, 60),    # touches the left inner edge
        _row(200, 0, 60, 60),    # touches the top: the image's own edge
        _row(200, 200, 60, 60),  # inside
        _row(460, 100, 40, 60),  # touches the right inner edge
    ])
    kept = in_window(rows, window, (3000, 2000))
    assert kept[:, 0].tolist() == [1200, 1200] and kept[:, 1].tolist() == [0, 200]
    assert kept[0, 4] == 1230 and kept[0, 5] == 30  # landmarks move with the window, sizes do not
    assert kept[0, 2:4].tolist() == [60, 60]


def test_faces_map_back_through_the_window_scale():
    kept = in_window(np.stack([_row(100, 100, 96, 96)]), Window(400, 300, 500, 500, 2.0), (2000, 2000))
    assert kept[0, :4].tolist() == [450, 350, 48, 48]


def test_merge_keeps_one_row_per_face():
    face = _row(100, 100, 50, 60, 0.93)
    same_face_other_level = _row(102, 99, 49, 62, 0.91)
    part_of_face = _row(110, 110, 20, 20, 0.97)  # a fine tile's view of an eye: inside the face, scored higher
    neighbour = _row(145, 100, 50, 60, 0.85)  # beside it, overlapping by 5 px
    merged = merge_windows(np.stack([same_face_other_level, part_of_face, neighbour, face]))
    assert [tuple(r[:4]) for r in merged] == [tuple(face[:4]), tuple(neighbour[:4])]
