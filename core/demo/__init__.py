"""Synthetic demo dataset in the mask-status competition's exact layout.

The real photos are private, so ``make_demo`` draws people instead: a background, shoulders in
clothing, a neck and a head with a shaded face (eyes, brows, nose, mouth, ears), hair that tells
the gender, wrinkles and grey hair that grow with the age, and one of five masks, a lowered mask
or no mask. Everything is drawn with OpenCV primitives and a few small numpy shading passes, so
the default size (270 + 81 people, 2,457 images) takes well under 30 s on two cores.

Layout written (the competition's)::

    OUT/train/train.csv                                   id,gender,race,age,path
    OUT/train/images/000001_female_Asian_45/mask1.jpg     mask1..mask5, incorrect_mask, normal
    OUT/train/images/000001_female_Asian_45/._mask1.jpg   AppleDouble trap in ~3 % of folders
    OUT/eval/info.csv, OUT/eval/gt.csv                    ImageID,ans (0 / the true class)
    OUT/eval/images/<sha1>.jpg

plus one marker file, ``OUT/.masklab_demo.json``, that lets a later call regenerate the folder
without ever overwriting a real dataset.

Determinism: every person draws from its own generator seeded by (seed, split, person index),
and the population (genders, ages, extensions, traps) from one seeded by (seed, split), so the
files are byte-identical for the same arguments however the work is scheduled. Worker
processes draw people in parallel (small demos are drawn in the calling process).

Modules, in the order the work flows:

* ``population`` - who the people are: gender and age-group counts, ages, extensions, traps;
* ``person``     - one person's constant look, and the plan of a split (``plan_people``);
* ``primitives`` - anti-aliased shapes, soft shading and blending on the 384x512 frame;
* ``portrait``   - the person drawn once (wall, hair, torso, face, age marks);
* ``masks``      - a mask worn or lowered, drawn per photo;
* ``effects``    - per-photo jitter, lighting, noise and blur; the seven photos of a person;
* ``writing``    - files, CSVs and ``make_demo``;
* ``noise``      - planted label errors (``label_noise=``) and the truth files beside train/;
* ``defects``    - planted data faults (``defect_rate=``: duplicates, leaks, bad photos) and
  their truth, ``defects.csv``, beside train/.
"""

from core.demo.defects import TRUTH_FILE as DEFECTS_FILE
from core.demo.effects import apply_lighting, photo_jitter, render_photos
from core.demo.noise import CORRECTIONS_FILE, TRUTH_FILE
from core.demo.person import (
                              HAIR_BG_GAP,
                              MASK_STYLES,
                              Person,
                              age_marks_strength,
                              grey_hair_fraction,
                              make_person,
                              plan_people,
)
from core.demo.population import STEMS, sample_population
from core.demo.portrait import draw_person, landmarks
from core.demo.primitives import HEIGHT, WIDTH
from core.demo.writing import MARKER, DemoError, eval_image_id, make_demo

__all__ = [
    "CORRECTIONS_FILE", "DEFECTS_FILE", "HAIR_BG_GAP", "HEIGHT", "MARKER", "MASK_STYLES", "STEMS", "TRUTH_FILE", "WIDTH",
    "DemoError", "Person", "age_marks_strength", "apply_lighting", "draw_person",
    "eval_image_id", "grey_hair_fraction", "landmarks", "make_demo", "make_person", "photo_jitter",
    "plan_people", "render_photos", "sample_population",
]
