"""The person drawn once per person: wall, hair, torso, shaded face and age marks.

Each photo then warps this base image (``effects.render_photos``) and adds its own mask.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from core.demo.person import GREY_HAIR, WHITE_HAIR, Person, _hair_colour, _temple_grey, _whitening
from core.demo.primitives import HEIGHT, WIDTH, _arc, _blend, _ellipse, _grid, _mix, _poly, _pts, _roi, _shade


def draw_background(p: Person, rng) -> np.ndarray:
    """Two-colour gradient wall with a faint large blob, like a room wall or a door."""
    t = np.linspace(0, 1, HEIGHT if p.bg_vertical else WIDTH, dtype=np.float32)
    t = t[:, None, None] if p.bg_vertical else t[None, :, None]
    c1, c2 = np.array(p.bg[0], np.float32), np.array(p.bg[1], np.float32)
    ramp = c1 * (1 - 0.5 * t) + c2 * (0.5 * t)
    img = np.broadcast_to(ramp, (HEIGHT, WIDTH, 3)).astype(np.uint8)
    img = np.ascontiguousarray(img)
    if rng.random() < 0.4:  # a door frame or shelf edge
        x = int(rng.uniform(0.05, 0.95) * WIDTH)
        cv2.line(img, (x, 0), (x, HEIGHT), tuple(float(v) * 0.8 for v in p.bg[1]),
                 int(rng.integers(3, 12)), cv2.LINE_AA)
    _shade(img, rng.uniform(0, WIDTH), rng.uniform(0, HEIGHT), 150, 150, rng.uniform(-0.08, 0.1))
    return img


def draw_hair_back(img, p: Person, rng):
    """Long hair behind the head, falling past the jaw onto the shoulders (women)."""
    if p.gender != "female":
        return
    cx, cy, a, b = p.cx, p.cy, p.fw / 2, p.fh / 2
    length = (0.95, 1.15, 0.65, 0.8)[p.hair_style]  # how far below the chin it falls
    bottom = cy + b + length * p.fh
    width = a * (1.45, 1.35, 1.55, 1.3)[p.hair_style]
    # Rounded crown (a half ellipse over the head), then straight down to the ends.
    t = np.linspace(math.pi, 2 * math.pi, 13)
    crown = np.stack([cx + 1.08 * a * np.cos(t), cy - 0.1 * b + 1.08 * b * np.sin(t)], 1)
    outline = [(cx - width, bottom), (cx - width * 1.02, cy + 0.2 * b), *crown,
               (cx + width * 1.02, cy + 0.2 * b), (cx + width, bottom)]
    ends = [(cx + width * s, bottom + rng.uniform(-0.08, 0.05) * p.fh) for s in np.linspace(1, -1, 7)]
    box = _roi(cx, (cy - b * 1.2 + bottom + 0.1 * p.fh) / 2, width * 1.05,
               (bottom - cy + b * 1.2) / 2 + 0.1 * p.fh)
    x0, y0, x1, y1 = box
    alpha = np.zeros((y1 - y0, x1 - x0), np.uint8)
    cv2.fillPoly(alpha, [_pts(np.asarray(outline + ends) - (x0, y0))], 255, cv2.LINE_AA, shift=4)
    _hair_layer(img, p, rng, box, alpha.astype(np.float32) / 255, cy - b * 1.2, bottom, width,
                temples=_temple_grey(p.age))


def _hair_layer(img, p: Person, rng, box, alpha, top, bottom, half_w, temples=0.0):
    """Fill `alpha`'s shape (in `box`) with textured hair and blend it onto img."""
    x0, y0, x1, y1 = box
    layer = np.empty((y1 - y0, x1 - x0, 3), np.uint8)
    layer[:] = np.array(_hair_colour(p)).round().astype(np.uint8)
    _hair_strands(layer, p, rng, top, bottom, half_w, offset=(x0, y0))
    if temples > 0:
        # Lighten the hair beside the eyes and above the ears.
        xs, ys = _grid(box)
        near = np.exp(-(((np.abs(xs - p.cx) - 0.52 * p.fw) / (0.15 * p.fw)) ** 2
                        + ((ys - (p.cy - 0.1 * p.fh)) / (0.2 * p.fh)) ** 2))
        t = (0.75 * temples * near)[..., None]
        layer[:] = (layer * (1 - t) + np.array(GREY_HAIR, np.float32) * t).astype(np.uint8)
    _blend(img[y0:y1, x0:x1], layer, alpha)


def _hair_strands(img, p: Person, rng, top, bottom, half_w, n=None, offset=(0, 0), x_mid=None):
    """Thin light/dark strands; a share p.grey of them grey, which shows as salt-and-pepper.

    `offset` is the frame position of img's top-left corner when img is a cut-out layer.
    """
    n = int(60 + p.fw / 2) if n is None else n
    x_mid = p.cx if x_mid is None else x_mid
    ox, oy = offset
    u = rng.uniform(-1, 1, n)
    x = x_mid + half_w * u - ox
    y0 = rng.uniform(top, top + 0.3 * (bottom - top), n) - oy
    y1 = y0 + rng.uniform(0.2, 1, n) * (bottom - oy - y0)
    bend = u * rng.uniform(0, 0.25, n) * (y1 - y0)  # strands fall outwards
    curves = _pts(np.stack([np.stack([x, y0], 1), np.stack([x + bend * 0.6, (y0 + y1) / 2], 1),
                            np.stack([x + bend, y1], 1)], 1))
    grey = rng.random(n) < p.grey
    dark = ~grey & (rng.random(n) < 0.5)
    for which, colour in ((dark, _mix(p.hair, (0, 0, 0), 0.35)),
                          (~grey & ~dark, _mix(p.hair, (255, 255, 255), 0.07)),
                          (grey, _mix(GREY_HAIR, WHITE_HAIR, _whitening(p.age)))):
        if which.any():
            cv2.polylines(img, list(curves[which]), False, colour, 1, cv2.LINE_AA, shift=4)


def draw_torso(img, p: Person, rng):
    """Neck, shoulders in clothing and a neckline."""
    cx, cy, fw, fh = p.cx, p.cy, p.fw, p.fh
    neck_shade = _mix(p.skin, (60, 40, 30), 0.12)
    neck_top, shoulder_y = cy + 0.25 * fh, cy + 0.5 * fh + 0.3 * fh
    _poly(img, [(cx - 0.26 * fw, neck_top), (cx + 0.26 * fw, neck_top),
                (cx + 0.3 * fw, shoulder_y + 0.2 * fh), (cx - 0.3 * fw, shoulder_y + 0.2 * fh)],
          neck_shade)
    _shade(img, cx, cy + 0.55 * fh, 0.3 * fw, 0.07 * fh, 0.3)  # shadow under the chin
    # Shoulders: a wide rounded shape going off the bottom of the frame.
    sw = fw * rng.uniform(1.3, 1.6)
    cloth = p.cloth
    _ellipse(img, (cx, shoulder_y + 0.5 * fh), (sw, 0.55 * fh), cloth)
    cv2.rectangle(img, (int(cx - sw), int(shoulder_y + 0.5 * fh)), (int(cx + sw), HEIGHT), cloth, -1)
    # Neckline: V, round, or a shirt collar.
    if p.neckline == 0:
        _poly(img, [(cx - 0.28 * fw, shoulder_y - 0.02 * fh), (cx + 0.28 * fw, shoulder_y - 0.02 * fh),
                    (cx, shoulder_y + 0.38 * fh)], neck_shade)
    elif p.neckline == 1:
        _ellipse(img, (cx, shoulder_y), (0.3 * fw, 0.14 * fh), neck_shade)
    else:
        _poly(img, [(cx - 0.24 * fw, shoulder_y - 0.02 * fh), (cx + 0.24 * fw, shoulder_y - 0.02 * fh),
                    (cx, shoulder_y + 0.22 * fh)], neck_shade)
        collar = _mix(cloth, (255, 255, 255), 0.6)
        for s in (-1, 1):
            _poly(img, [(cx + s * 0.3 * fw, shoulder_y - 0.05 * fh),
                        (cx + s * 0.02 * fw, shoulder_y + 0.24 * fh),
                        (cx + s * 0.42 * fw, shoulder_y + 0.12 * fh)], collar)
    # Folds and side shading of the clothes.
    for s in (-1, 1):
        _shade(img, cx + s * sw * 0.95, HEIGHT, 0.35 * sw, 0.6 * (HEIGHT - shoulder_y), 0.25)


def draw_head(img, p: Person):
    """Ears, the shaded face and its features."""
    cx, cy, fw, fh = p.cx, p.cy, p.fw, p.fh
    a, b = fw / 2, fh / 2
    ear = _mix(p.skin, (150, 80, 70), 0.12)
    ear_y = cy - 0.01 * fh
    for s in (-1, 1):
        _ellipse(img, (cx + s * (a + 0.01 * fw), ear_y), (0.08 * fw, 0.13 * fh), ear)
        _ellipse(img, (cx + s * (a + 0.03 * fw), ear_y), (0.035 * fw, 0.08 * fh),
                 _mix(ear, (60, 30, 30), 0.25), 1)
    _face_skin(img, p)
    _face_features(img, p)


def _face_skin(img, p: Person):
    """Egg-shaped face, darker towards its rim and lit from the upper left."""
    cx, cy, a, b = p.cx, p.cy, p.fw / 2, p.fh / 2
    box = _roi(cx, cy, a + 2, b + 2)
    x0, y0, x1, y1 = box
    xs, ys = _grid(box)
    dy = (ys - cy) / b
    a_eff = a * (1 - p.jaw_taper * np.clip(dy, 0, 1) ** 2)  # narrower towards the chin
    r = np.sqrt(((xs - cx) / a_eff) ** 2 + dy ** 2)
    alpha = np.clip((1 - r) * min(a, b) + 0.5, 0, 1)
    light = 1.04 - 0.22 * r ** 4 - 0.05 * (xs - cx) / a - 0.03 * dy
    colour = np.array(p.skin, np.float32)[None, None, :] * light[..., None]
    roi = img[y0:y1, x0:x1].astype(np.float32)
    roi = roi * (1 - alpha[..., None]) + colour * alpha[..., None]
    img[y0:y1, x0:x1] = np.clip(roi, 0, 255).astype(np.uint8)


def landmarks(p: Person) -> dict:
    """Key points of the face (frame coordinates before the photo's jitter)."""
    cx, cy, fw, fh = p.cx, p.cy, p.fw, p.fh
    return {
        "eye_y": cy - 0.04 * fh, "eye_dx": 0.2 * fw,
        "brow_y": cy - 0.14 * fh,
        "nose_y": cy + 0.16 * fh,
        "mouth_y": cy + 0.29 * fh,
        "chin_y": cy + 0.5 * fh,
    }


def _face_features(img, p: Person):
    cx, fw, fh = p.cx, p.fw, p.fh
    lm = landmarks(p)
    eye_y, dx = lm["eye_y"], lm["eye_dx"]
    skin = p.skin
    dark_skin = _mix(skin, (40, 20, 15), 0.45)
    # Eye sockets: the dark band Haar cascades look for; brighter cheeks below and nose bridge.
    for s in (-1, 1):
        _shade(img, cx + s * dx, eye_y - 0.01 * fh, 0.16 * fw, 0.07 * fh, 0.22)
        _shade(img, cx + s * 0.2 * fw, eye_y + 0.15 * fh, 0.14 * fw, 0.07 * fh, -0.06)
    _shade(img, cx, eye_y + 0.06 * fh, 0.05 * fw, 0.14 * fh, -0.08)
    # Eyes.
    ew, eh = 0.105 * fw, 0.042 * fw
    for s in (-1, 1):
        ex = cx + s * dx
        _eye(img, ex, eye_y, ew, eh, p.iris, s)
        # Upper lid crease and lashes.
        _poly(img, _arc(ex, eye_y - eh * 0.2, ew * 1.02, eh * 1.25), _mix(dark_skin, (0, 0, 0), 0.5),
              closed=False, thickness=max(1, int(round(fw / 80))))
        _poly(img, _arc(ex, eye_y - eh * 1.6, ew * 0.9, eh * 0.9), _mix(skin, (60, 30, 20), 0.25),
              closed=False, thickness=1)
    # Brows (go grey more slowly than the hair).
    brow = _mix(_mix(p.hair, (0, 0, 0), 0.2), GREY_HAIR, 0.5 * p.grey)
    bt = 0.028 * fw + (0.01 * fw if p.gender == "male" else 0)
    for s in (-1, 1):
        bx = cx + s * (dx + 0.01 * fw)
        inner, outer = bx - s * 0.11 * fw, bx + s * 0.12 * fw
        top = [(inner, lm["brow_y"] + 0.005 * fh), (bx, lm["brow_y"] - 0.022 * fh),
               (outer, lm["brow_y"] + 0.01 * fh)]
        bottom = [(outer, lm["brow_y"] + 0.01 * fh + 0.3 * bt), (bx, lm["brow_y"] - 0.022 * fh + bt),
                  (inner, lm["brow_y"] + 0.005 * fh + bt)]
        _poly(img, top + bottom, brow)
    # Nose: shaded sides, lit tip, nostrils and the shadow beneath.
    ny = lm["nose_y"]
    for s in (-1, 1):
        _shade(img, cx + s * 0.075 * fw, eye_y + 0.12 * fh, 0.03 * fw, 0.11 * fh, 0.12)
        _poly(img, _arc(cx + s * 0.07 * fw, ny, 0.035 * fw, 0.025 * fh, 6), dark_skin,
              closed=False, thickness=1)
        _ellipse(img, (cx + s * 0.045 * fw, ny + 0.012 * fh), (0.022 * fw, 0.011 * fw),
                 _mix(skin, (30, 10, 10), 0.6), angle=s * 15)
    _shade(img, cx, ny - 0.02 * fh, 0.05 * fw, 0.03 * fh, -0.08)
    _shade(img, cx, ny + 0.045 * fh, 0.1 * fw, 0.02 * fh, 0.12)
    # Mouth: lips, the dark line between them, shadow under the lower lip.
    my, mw = lm["mouth_y"], 0.17 * fw
    upper = [(cx - mw, my), (cx - mw * 0.4, my - 0.035 * fh), (cx, my - 0.025 * fh),
             (cx + mw * 0.4, my - 0.035 * fh), (cx + mw, my)]
    lower = [(cx + mw, my), (cx + mw * 0.5, my + 0.045 * fh), (cx - mw * 0.5, my + 0.045 * fh)]
    _poly(img, upper + lower, p.lips)
    _poly(img, [(cx - mw, my), (cx - mw * 0.4, my + 0.004 * fh), (cx + mw * 0.4, my + 0.004 * fh),
                (cx + mw, my)], _mix(p.lips, (30, 10, 10), 0.6), closed=False,
          thickness=max(1, int(round(fw / 90))))
    _shade(img, cx, my + 0.075 * fh, 0.1 * fw, 0.02 * fh, 0.1)


def _eye(img, ex, ey, ew, eh, iris, side):
    """Almond-shaped white with an iris and pupil, clipped to the eye opening."""
    box = _roi(ex, ey, ew + 1, eh + 1)
    x0, y0, x1, y1 = box
    xs, ys = _grid(box)
    u = (xs - ex) / ew
    half = eh * np.clip(1 - u ** 2, 0, 1) ** 0.8          # almond opening
    inside = np.clip(np.minimum(half - np.abs(ys - ey), 1 - np.abs(u) * 1.0) + 0.5, 0, 1)
    r = np.hypot(xs - (ex - side * 0.05 * ew), ys - ey)
    iris_r = 0.5 * ew
    colour = np.empty(xs.shape + (3,), np.float32)
    colour[:] = (228, 224, 220)
    colour[r < iris_r] = iris
    colour[r < iris_r * 0.45] = (12, 10, 12)
    colour[(r < iris_r * 0.15) & (ys < ey)] = (240, 240, 240)  # catch light
    roi = img[y0:y1, x0:x1].astype(np.float32)
    a = inside[..., None]
    img[y0:y1, x0:x1] = np.clip(roi * (1 - a) + colour * a, 0, 255).astype(np.uint8)


def add_age_marks(img, p: Person, rng):
    """Forehead lines, crow's feet and eye bags: thin low-contrast marks growing with age."""
    w = p.wrinkles
    if w <= 0.02:
        return
    cx, fw, fh = p.cx, p.fw, p.fh
    lm = landmarks(p)
    # A few percent darker than the skin at 30, about a fifth darker at 60.
    line = _mix(p.skin, (70, 40, 30), 0.05 + 0.27 * w)
    thick = 2 if (w > 0.35 and fw >= 110) else 1
    # Forehead: 1-5 arcs between the brows and the hairline.
    for i in range(int(round(1 + 4 * w))):
        y = lm["brow_y"] - (0.035 + 0.026 * i) * fh + rng.uniform(-0.005, 0.005) * fh
        half = (0.18 + 0.12 * w + rng.uniform(-0.03, 0.03)) * fw
        _poly(img, _arc(cx + rng.uniform(-0.03, 0.03) * fw, y, half, rng.uniform(0.006, 0.02) * fh),
              line, closed=False, thickness=thick)
    # A frown line between the brows.
    if w > 0.3:
        for s in (-1, 1):
            _poly(img, [(cx + s * 0.03 * fw, lm["brow_y"] - 0.01 * fh),
                        (cx + s * 0.02 * fw, lm["brow_y"] + 0.05 * fh)],
                  line, closed=False, thickness=1)
    for s in (-1, 1):
        # Crow's feet fanning out from the outer eye corner.
        ox = cx + s * (lm["eye_dx"] + 0.12 * fw)
        for k in range(int(round(1 + 3 * w))):
            ang = math.radians(-30 + 20 * k + rng.uniform(-6, 6))
            ln = (0.04 + 0.05 * w) * fw
            _poly(img, [(ox, lm["eye_y"] + 0.01 * fh),
                        (ox + s * ln * math.cos(ang), lm["eye_y"] + 0.01 * fh + ln * math.sin(ang))],
                  line, closed=False, thickness=1)
        # Eye bag: a soft shadow crescent under the eye and its lower line.
        ex = cx + s * lm["eye_dx"]
        _shade(img, ex, lm["eye_y"] + 0.065 * fh, 0.11 * fw, 0.03 * fh, 0.3 * w)
        _poly(img, _arc(ex, lm["eye_y"] + 0.08 * fh, 0.08 * fw, -0.02 * fh, 8), line,
              closed=False, thickness=1)
        # Fold from the nose to the mouth corner (hidden by masks).
        _poly(img, [(cx + s * 0.1 * fw, lm["nose_y"]), (cx + s * 0.2 * fw, lm["mouth_y"] + 0.01 * fh)],
              line, closed=False, thickness=1)


def draw_hair_front(img, p: Person, rng):
    """Hair on top of the head: hairline and parting; for women also locks framing the face."""
    cx, cy, fw, fh = p.cx, p.cy, p.fw, p.fh
    a, b = fw / 2, fh / 2
    female = p.gender == "female"
    box = _roi(cx, cy - 0.1 * fh, 0.75 * fw, 0.6 * fh)
    x0, y0, x1, y1 = box
    xs, ys = _grid(box)
    # Skull outline: a bit larger than the face and higher (a buzz cut hugs it).
    bulk = 1.1 if female else (1.03, 1.06, 1.02, 1.09)[p.hair_style]
    head = np.hypot((xs - cx) / (a * bulk), (ys - (cy - 0.04 * fh)) / (b * (bulk + 0.02)))
    # Hairline: high in the middle, coming down at the temples, tilted by the parting.
    u = np.clip(np.abs(xs - cx - p.part * 0.08 * fw) / a, 0, 1.3)
    top = cy - (0.36 if not female else 0.33) * fh + 0.02 * fh * p.part * np.sign(xs - cx)
    side = cy - (0.06 if not female else -0.02) * fh
    hairline = top + (side - top) * u ** 3
    if not female and p.age > 35:
        # Receding temples (an M-shaped hairline) from the late thirties on.
        recede = min(1.0, (p.age - 35) / 25) * 0.12 * fh
        hairline = hairline - recede * np.exp(-((u - 0.6) / 0.25) ** 2)
    inside = np.minimum((1 - head) * min(a, b), hairline - ys)
    if female:
        # Locks over the face's edges: widest at the temples, gone by the cheekbones.
        dy = np.clip((ys - cy) / b, -1, 1)
        face_half = a * np.sqrt(1 - dy ** 2)
        overlap = 0.22 * a * np.clip((cy + 0.05 * fh - ys) / (0.35 * fh), 0, 1)
        lock = np.minimum(np.abs(xs - cx) - (face_half - overlap), (cy + 0.35 * fh) - ys)
        inside = np.maximum(inside, np.minimum(lock, (1.05 - head) * min(a, b)))
    alpha = np.clip(inside + 0.5, 0, 1)
    _hair_layer(img, p, rng, box, alpha, cy - b * 1.15, cy + (0.4 if female else -0.1) * fh, 0.6 * fw,
                temples=_temple_grey(p.age))
    if female and p.hair_style == 1:  # hair band on the crown
        _poly(img, _arc(cx, cy - 0.42 * fh, 0.42 * fw, 0.08 * fh), _mix(p.cloth, (255, 255, 255), 0.2),
              closed=False, thickness=max(2, int(fw / 30)))
    if female and p.hair_style == 3:  # ponytail swept over one shoulder
        s = 1 if p.part >= 0 else -1
        x = cx + s * 0.55 * fw
        tail = [(x - 0.08 * fw, cy + 0.1 * fh), (x + 0.1 * fw, cy + 0.1 * fh),
                (x + s * 0.2 * fw + 0.06 * fw, cy + 0.95 * fh), (x + s * 0.15 * fw - 0.1 * fw, cy + 0.9 * fh)]
        tbox = _roi(x + s * 0.1 * fw, cy + 0.55 * fh, 0.3 * fw, 0.5 * fh)
        alpha = np.zeros((tbox[3] - tbox[1], tbox[2] - tbox[0]), np.uint8)
        cv2.fillPoly(alpha, [_pts(np.asarray(tail) - tbox[:2])], 255, cv2.LINE_AA, shift=4)
        _hair_layer(img, p, rng, tbox, alpha.astype(np.float32) / 255, cy + 0.1 * fh, cy + 0.95 * fh,
                    0.2 * fw)


def draw_person(p: Person, rng) -> np.ndarray:
    img = draw_background(p, rng)
    draw_hair_back(img, p, rng)
    draw_torso(img, p, rng)
    draw_head(img, p)
    add_age_marks(img, p, rng)
    draw_hair_front(img, p, rng)
    return cv2.GaussianBlur(img, (3, 3), 0.6)
