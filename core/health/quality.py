"""Photo quality: cleanvision's checks, and each photo judged against its own person's photos.

cleanvision judges every photo by itself: dark (the 99th brightness percentile under 0.32),
light (the 5th over 0.95), low information (a histogram entropy under 3 bits), blurry (little
edge strength at 64 px), odd size (far from the dataset's sizes) and odd aspect ratio (the short
side under 0.35 of the long one). Those bounds suit the extremes; on the demo they found the
planted dark photos but missed strongly blurred, over-exposed and nearly blank ones: its
drawings are smooth, so a blur leaves them above the edge bound, and a nearly blank frame with
a little noise keeps 5 bits of entropy.

A competition person's seven photos were taken in one sitting (same face, same room, same
camera), so a photo can also be judged against the same person's other six: the difference
between the photo and the median of the others, in units of how much such differences spread
over the whole dataset (a robust z-score: 1.4826 x the median absolute deviation), catches a
photo that is much darker, brighter, blurrier or emptier than its siblings, with bounds that
adapt to the dataset. A photo is flagged when cleanvision flags it or when its z-score passes
the bound below.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core import rulebook as rb

CLEANVISION_ISSUES = rb.HEALTH_QUALITY  # every quality issue of the rule book is one of cleanvision's checks
BRIGHTNESS = ["brightness", "brightness_perc_1", "brightness_perc_5", "brightness_perc_10", "brightness_perc_15",
              "brightness_perc_90", "brightness_perc_95", "brightness_perc_99"]
# The measurements (core.health.measure) each of cleanvision's checks scores.
CLEANVISION_COLUMNS = {"dark": BRIGHTNESS, "light": BRIGHTNESS, "low_information": ["entropy"],
                       "blurry": ["blurriness", "blurriness_grayscale_std"], "odd_size": ["size"],
                       "odd_aspect_ratio": ["aspect_ratio"]}
if set(CLEANVISION_COLUMNS) != set(CLEANVISION_ISSUES):  # the rule book's quality issues changed
    raise RuntimeError(f"core.rulebook.HEALTH_QUALITY is {', '.join(CLEANVISION_ISSUES)} but core.health.quality "
                       f"measures {', '.join(CLEANVISION_COLUMNS)}; give each issue its measurements here")

MIN_PHOTOS = 4  # a person needs this many comparable photos to judge one against the others
# Bounds of the per-person z-scores, set on the demo so that no clean photo of 1,890 passes
# them while the planted faults do (docs/health.md has the figures).
Z_BOUND = {"dark": 3.3, "light": 11.0, "low_information": 6.0, "blurry": 6.5}
EXPOSED = 1.5  # a nearly blank, saturated photo this much brighter than its siblings is over-exposed
SATURATED = 0.98  # its 99th brightness percentile: the highlights are clipped
# cleanvision's blurry measures edge strength, which depends on the scene as much as on focus
# (plain walls, smooth drawings): where a photo has siblings of the same scene, its verdict
# stands only if the photo is also clearly blurrier than they are.
BLUR_CONFIRM = 4.9
# An aspect ratio this far from the dataset's usual one is odd, where the usual one is shared
# (90% of the images within 10% of the median): the competition's photos are all 384x512.
ASPECT_FACTOR = 1.25
UNIFORM_ASPECT = 0.10


def cleanvision_issues(table: pd.DataFrame) -> pd.DataFrame:
    """cleanvision's verdicts on the measured rows of ``table`` (index: path): ``is_<issue>_issue``
    and ``<issue>_score`` (0-1, lower is worse) per issue, from its own thresholds.

    The measurements are handed to cleanvision's Imagelab as earlier results (its ``info``), so
    it scores them without decoding any image again."""
    from cleanvision import Imagelab

    measured = table[table["ok"].astype(bool)].set_index("path")
    lab = Imagelab(filepaths=list(measured.index), verbose=False)
    for issue, columns in CLEANVISION_COLUMNS.items():
        lab.info[issue] = measured[columns].astype(float)
    lab.find_issues({issue: {} for issue in CLEANVISION_ISSUES}, n_jobs=1, verbose=False)
    return lab.issues


def _others_median(values: np.ndarray, groups: dict[str, np.ndarray]) -> np.ndarray:
    """Per row, the median of the same group's other rows (NaN where the group is too small)."""
    out = np.full(len(values), np.nan)
    for idx in groups.values():
        if len(idx) < MIN_PHOTOS:
            continue
        v = values[idx]
        for k, i in enumerate(idx):
            out[i] = np.median(np.delete(v, k))
    return out


def _robust_z(diff: np.ndarray) -> np.ndarray:
    finite = diff[np.isfinite(diff)]
    if len(finite) < 10:
        return np.full(len(diff), np.nan)
    scale = 1.4826 * np.median(np.abs(finite - np.median(finite)))
    return diff / max(scale, 1e-6)


def person_z(table: pd.DataFrame, person: np.ndarray, comparable: np.ndarray) -> pd.DataFrame:
    """Per row, how far the photo sits from its person's other photos, as robust z-scores, for
    dark, light, low_information and blurry (positive = in the issue's direction; NaN where the
    photo or its person cannot be compared). ``comparable``: rows whose shape is usual."""
    use = comparable & table["ok"].astype(bool).to_numpy()
    groups = pd.Series(np.arange(len(table)))[use].groupby(person[use]).indices
    groups = {k: np.flatnonzero(use)[v] for k, v in groups.items()}
    t = table.astype({c: float for c in ("brightness", "brightness_perc_1", "entropy", "contrast", "detail",
                                         "soft")})
    features = {
        "log_brightness": np.log(t["brightness"].to_numpy() + 1e-3),
        "dark_floor": t["brightness_perc_1"].to_numpy(),
        "entropy": t["entropy"].to_numpy(),
        "log_contrast": np.log(t["contrast"].to_numpy() + 0.5),
        # contrast relative to brightness: a dimmed photo keeps it, a nearly blank one loses it
        "log_variation": np.log(t["contrast"].to_numpy() + 0.5) - np.log(255 * t["brightness"].to_numpy() + 1.0),
        "soft": t["soft"].to_numpy(),
        "log_detail": np.log(t["detail"].to_numpy() + 1e-3),
    }
    z = {name: _robust_z(v - _others_median(v, groups)) for name, v in features.items()}
    return pd.DataFrame({
        "dark": -z["log_brightness"],
        "light": z["dark_floor"] + np.clip(-z["entropy"], 0, None),
        # a nearly blank photo loses contrast both outright and against its brightness (a dark
        # one only outright, an over-exposed one mostly against its brightness)
        "low_information": np.minimum(-z["log_variation"], -z["log_contrast"]),
        "blurry": z["soft"] - z["log_detail"],
    }, index=table.index)


def odd_aspect(aspect: np.ndarray) -> np.ndarray:
    """How far each aspect ratio (short side / long side) sits from the dataset's usual one, as a
    factor >= 1; all ones when the dataset has no usual one."""
    finite = aspect[np.isfinite(aspect)]
    if len(finite) == 0:
        return np.ones(len(aspect))
    usual = np.median(finite)
    if np.mean(np.abs(finite / usual - 1) <= UNIFORM_ASPECT) < 0.9:
        return np.ones(len(aspect))
    return np.exp(np.abs(np.log(aspect / usual)))


def quality_findings(table: pd.DataFrame, person: np.ndarray | None, foreign: np.ndarray | None = None) -> pd.DataFrame:
    """One row per quality finding: ``row`` (position in ``table``), ``issue``, ``score`` (0-1,
    higher is worse). ``foreign``: photos that are copies of another person's (core.health.
    duplicates), which are not compared with the person they are filed under.

    One issue explains the others: a photo of an odd shape (a strip cut from a photo) gets only
    that one; a nearly blank one is not also called dark, light or blurry (unless it is far darker
    or brighter than its siblings: then it is dark or light, not blank); a dark or light one is
    not also blurry."""
    ok = table["ok"].astype(bool).to_numpy()
    if not ok.any():
        return pd.DataFrame(columns=["row", "issue", "score"])
    cv = cleanvision_issues(table).reindex(table["path"])
    severity = pd.DataFrame(0.0, index=table.index, columns=list(CLEANVISION_ISSUES))
    for issue in CLEANVISION_ISSUES:
        flagged = cv[f"is_{issue}_issue"].fillna(False).astype(bool).to_numpy()
        severity.loc[flagged, issue] = 1.0 - cv[f"{issue}_score"].to_numpy(float)[flagged]
    said = severity > 0  # cleanvision's own verdicts
    aspect = table["aspect_ratio"].to_numpy(float)
    factor = odd_aspect(aspect)
    odd_shape = factor > ASPECT_FACTOR
    severity.loc[odd_shape, "odd_aspect_ratio"] = np.maximum(
        severity.loc[odd_shape, "odd_aspect_ratio"], np.minimum(1.0, np.log(factor[odd_shape]) / np.log(ASPECT_FACTOR) / 2))
    if person is not None:
        comparable = ~odd_shape & (severity["odd_aspect_ratio"] == 0).to_numpy()
        if foreign is not None:
            comparable &= ~foreign
        z = person_z(table, person, comparable)
        judged = z["blurry"].notna().to_numpy()
        unconfirmed = judged & ~(z["blurry"] >= BLUR_CONFIRM).to_numpy()
        severity.loc[unconfirmed, "blurry"] = 0.0
        for issue, bound in Z_BOUND.items():
            over = (z[issue] > bound).to_numpy()
            relative = np.minimum(1.0, z[issue].to_numpy() / (2 * bound))
            severity.loc[over, issue] = np.maximum(severity.loc[over, issue], relative[over])
    found = severity > 0
    # an over- or under-exposed frame can be all but blank: then the exposure says why, when
    # cleanvision calls it dark or light, or (with siblings) it is far darker than they are, or
    # brighter and clipped (a blank frame keeps about their brightness, and no clipped highlights)
    exposed = {issue: said[issue].to_numpy().copy() for issue in ("light", "dark")}
    if person is not None:
        brighter = -z["dark"].to_numpy()
        exposed["light"] |= (brighter > EXPOSED) & (table["brightness_perc_99"].astype(float).to_numpy() >= SATURATED)
        exposed["dark"] |= -brighter > Z_BOUND["dark"]
    for issue, which in exposed.items():
        which = which & found["low_information"].to_numpy()
        found.loc[which, "low_information"] = False
        found.loc[which, issue] = True
        relative = np.zeros(len(table)) if person is None else np.nan_to_num(z[issue].to_numpy() / (2 * Z_BOUND[issue]))
        severity.loc[which, issue] = np.maximum.reduce([severity[issue].to_numpy(), np.minimum(1.0, relative),
                                                        severity["low_information"].to_numpy()])[which]
    shape = found["odd_aspect_ratio"].to_numpy()  # a strip of a photo: its shape says what is wrong
    found.loc[shape, [c for c in CLEANVISION_ISSUES if c != "odd_aspect_ratio"]] = False
    found.loc[found["low_information"], ["dark", "light", "blurry"]] = False
    found.loc[found["dark"] | found["light"], "blurry"] = False
    found.loc[~ok] = False
    rows = [(i, issue, float(severity.at[i, issue])) for issue in CLEANVISION_ISSUES
            for i in np.flatnonzero(found[issue].to_numpy())]
    return pd.DataFrame(rows, columns=["row", "issue", "score"])
