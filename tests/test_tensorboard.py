"""--tensorboard: RUN/tb holds each epoch's loss, macro F1, lr and confusion matrix."""

from __future__ import annotations

import json

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from core.training import TrainConfig, train
from core.training.tensorboard import confusion_image
from tests.helpers import make_train, tiny_recipe  # noqa: E402

SETTINGS = dict(model="smallcnn", epochs=2, batch_size=16, lr=0.01, seed=0, workers=1)


def test_event_file_holds_the_epoch_scalars_and_confusion(tmp_path):
    data = make_train(tmp_path / "train", people=12)
    run = train(TrainConfig(data=str(data), recipe=str(tiny_recipe(tmp_path / "r.json")), out=str(tmp_path / "runs"),
                            tensorboard=True, **SETTINGS))
    assert list((run / "tb").glob("events.out.tfevents.*"))
    events = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0, "images": 0}).Reload()
    tags = events.Tags()
    assert {"loss/train", "loss/val", "macro_f1/val", "accuracy/val", "lr"} <= set(tags["scalars"])
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    for tag, key in (("loss/train", "train_loss"), ("macro_f1/val", "macro_f1"), ("lr", "lr")):
        logged = events.Scalars(tag)
        assert [e.step for e in logged] == [1, 2]
        assert np.allclose([e.value for e in logged], [r[key] for r in records], rtol=1e-5)
    images = events.Images("confusion/val")
    assert [e.step for e in images] == [1, 2] and images[0].width == 18 * 8


def test_off_by_default(tmp_path):
    data = make_train(tmp_path / "train", people=12)
    run = train(TrainConfig(data=str(data), recipe=str(tiny_recipe(tmp_path / "r.json")), out=str(tmp_path / "runs"),
                            **{**SETTINGS, "epochs": 1}))
    assert not (run / "tb").exists()


def test_confusion_image_is_row_normalised():
    image = confusion_image(np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]), 3, scale=2)
    assert image.shape == (3, 6, 6) and image.dtype == np.uint8
    assert 8 < image[0, 0, 0] < 255  # half of class 0's images: between white and the full colour
    assert image[:, 4, 4].tolist() == [255, 255, 255]  # class 2 never occurs: white
    assert image[:, 2, 2].tolist() == [8, 48, 107]  # every true 1 predicted 1: full colour
    assert image[:, 0, 0].tolist() == image[:, 0, 2].tolist()  # class 0 split half and half
