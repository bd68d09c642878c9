"""The competition's label encoding: class = mask * 6 + gender * 3 + age_group.

Keep this exactly as the competition defines it; submissions are scored against it.
"""

from __future__ import annotations

MASK_NAMES = ("Wear", "Incorrect", "Not wear")
GENDER_NAMES = ("Male", "Female")
AGE_NAMES = ("<30", "30-59", "60+")
NUM_CLASSES = len(MASK_NAMES) * len(GENDER_NAMES) * len(AGE_NAMES)  # 18

# File stems of one person's seven photos and the mask state each shows.
STEM_TO_MASK = {
    "mask1": 0, "mask2": 0, "mask3": 0, "mask4": 0, "mask5": 0,
    "incorrect_mask": 1,
    "normal": 2,
}
GENDER_CODES = {"male": 0, "female": 1}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def age_group(age: int) -> int:
    """Age in years -> 0 (<30), 1 (30-59) or 2 (60 and over)."""
    if age < 30:
        return 0
    return 1 if age < 60 else 2


def encode(mask: int, gender: int, age_grp: int) -> int:
    return mask * 6 + gender * 3 + age_grp


def decode(label: int) -> tuple[int, int, int]:
    """Class -> (mask, gender, age_group)."""
    if not 0 <= label < NUM_CLASSES:
        raise ValueError(f"class must be in 0..{NUM_CLASSES - 1}, got {label}")
    return label // 6, (label // 3) % 2, label % 3


def class_name(label: int) -> str:
    """Readable name, e.g. 'Wear · Female · <30'."""
    mask, gender, age = decode(label)
    return f"{MASK_NAMES[mask]} · {GENDER_NAMES[gender]} · {AGE_NAMES[age]}"


CLASS_NAMES = tuple(class_name(c) for c in range(NUM_CLASSES))
