"""Image evaluation on toy 16 px sets of discs and squares built here: features, distances, memorisation, report."""
from __future__ import annotations

import base64
import importlib.machinery
import importlib.util
import io
import json
import re
import sys
import types
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from scipy import linalg
from torch import nn

from synthgen.images.types import ImageSet, IntensityMapping
from synthgen.errors import InvalidArgumentError, InvalidDataError, ModelFileError
from synthgen.evaluation.images.evaluate import IMAGE_GATES, IMAGE_WORDING, evaluate_images
from synthgen.evaluation.images.features import FeatureExtractor
from synthgen.evaluation.images.metrics import frechet_distance, kernel_inception_distance, prdc
from synthgen.evaluation.report import Report
from synthgen.evaluation.scores import Score, SectionResult

SIDE = 16
N = 60
GREY = IntensityMapping(0, 255, "pixel")


def shapes(n: int = N, seed: int = 0, labelled: bool = True) -> ImageSet:
    """Half discs, half squares: bright shapes of random size and position on a dark, slightly noisy background."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:SIDE, :SIDE] + 0.5
    kind = np.arange(n) % 2
    cy, cx = rng.uniform(5, 11, (2, n, 1, 1))
    radius = rng.uniform(2.5, 4.5, (n, 1, 1))
    disc = (y - cy) ** 2 + (x - cx) ** 2 <= radius**2
    square = (np.abs(y - cy) <= radius * 0.85) & (np.abs(x - cx) <= radius * 0.85)
    inside = np.where(kind[:, None, None] == 0, disc, square)
    images = np.where(inside, rng.uniform(0.5, 0.9, (n, 1, 1)), -0.8) + rng.normal(0, 0.05, (n, SIDE, SIDE))
    labels = np.where(kind == 0, "disc", "square").astype(object) if labelled else np.full(n, "", dtype=object)
    return ImageSet(np.clip(images, -1, 1).astype(np.float32)[:, None], labels, GREY, label_name="shape" if labelled else None)


def grid_tiles(html: str, title: str, group: int = 1) -> list[np.ndarray]:
    """The tiles (back to 16 x 16 in [-1, 1]) of the image grid under ``title`` in the HTML report.

    Tiles are drawn 4x (64 px), 2 px apart, and 12 px apart after every ``group`` tiles and between rows.
    """
    match = re.search(rf"<h3>{re.escape(title)}</h3>.*?src=\"data:image/png;base64,([A-Za-z0-9+/=]+)\"", html, re.S)
    assert match, f"no image grid {title!r}"
    picture = np.asarray(Image.open(io.BytesIO(base64.b64decode(match[1]))), dtype=np.float64)
    tiles = []
    for top in range(0, picture.shape[0], 76):
        for j in range(picture.shape[1]):
            left = j * 66 + (j // group) * 10
            block = picture[top : top + 64, left : left + 64]
            if block.shape != (64, 64):
                break
            if block.min() < 255:  # blank places at the end of a row are white
                tiles.append(block[::4, ::4] / 127.5 - 1)
    return tiles


@pytest.fixture(scope="module")
def real() -> ImageSet:
    return shapes(N, seed=0)


@pytest.fixture(scope="module")
def holdout() -> ImageSet:
    return shapes(N, seed=1)


@pytest.fixture(scope="module")
def extractor(real: ImageSet) -> FeatureExtractor:
    return FeatureExtractor.fit(real, seed=0)


@pytest.fixture(scope="module")
def fresh_report(real: ImageSet, holdout: ImageSet):
    """Synthetic images drawn like the real ones (a perfect, non-copying generator); real images hidden."""
    return evaluate_images(real, shapes(N, seed=2), holdout=holdout, show_real_images=False, progress=False)


@pytest.fixture(scope="module")
def copy_report(real: ImageSet, holdout: ImageSet):
    """Synthetic images that are the training images: memorisation."""
    return evaluate_images(real, replace(real), holdout=holdout, progress=False)


def scores(report) -> dict[str, object]:
    return {row.key: row for row in report.scores.itertuples()}


def test_frechet_distance_matches_the_sqrtm_formula_and_survives_singular_covariances() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 6)), rng.normal(0.3, 1.5, size=(300, 6)) @ rng.normal(size=(6, 6))
    sigma_a, sigma_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    expected = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(sigma_a + sigma_b) - 2 * np.trace(linalg.sqrtm(sigma_a @ sigma_b).real)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(a, a) == pytest.approx(0, abs=1e-9)
    few = rng.normal(size=(10, 64))  # 10 samples in 64 dimensions: rank-9 covariances
    value = frechet_distance(few, rng.normal(size=(12, 64)))
    assert np.isfinite(value) and value > 0 and frechet_distance(few, few) == pytest.approx(0, abs=1e-8)


def test_kid_is_unbiased_and_grows_with_a_shift() -> None:
    rng = np.random.default_rng(0)
    same = [kernel_inception_distance(rng.normal(size=(200, 16)), rng.normal(size=(200, 16)), rng=rng, subsets=20)[0] for _ in range(10)]
    mean, std = kernel_inception_distance(rng.normal(size=(200, 16)), rng.normal(size=(200, 16)), rng=rng)
    assert abs(np.mean(same)) < 3 * np.std(same) / np.sqrt(len(same)) and abs(mean) < 3 * std
    shifted = kernel_inception_distance(rng.normal(size=(200, 16)), rng.normal(0.5, 1, size=(200, 16)), rng=rng)
    assert shifted[0] > 10 * shifted[1] > 0


def test_prdc_on_known_cases() -> None:
    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 8))
    same = prdc(real, rng.normal(size=(300, 8)))
    assert all(0.8 <= same[key] <= 1 for key in ("precision", "recall", "coverage")) and 0.7 <= same["density"] <= 1.3
    far = prdc(real, rng.normal(20, 1, size=(300, 8)))
    assert far == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}
    collapsed = prdc(real, rng.normal(0, 0.1, size=(300, 8)))  # one mode: precise, no recall
    assert collapsed["precision"] == 1.0 and collapsed["recall"] == 0.0 and collapsed["coverage"] < 0.3


def test_feature_fd_and_kid_are_zero_for_identical_images_and_grow_with_noise(real: ImageSet, extractor: FeatureExtractor) -> None:
    rng = np.random.default_rng(5)
    train = extractor.features(real.images)
    assert train.shape == (N, 112) and np.allclose(train.mean(axis=0), 0) and np.allclose(train.std(axis=0)[train.std(axis=0) > 0], 1)
    noised = [extractor.features(np.clip(real.images + rng.normal(0, s, real.images.shape), -1, 1).astype(np.float32)) for s in (0.0, 0.1, 0.3, 0.6)]
    values = [frechet_distance(train, features) for features in noised]
    assert values[0] == pytest.approx(0, abs=1e-9)
    assert all(a < b for a, b in zip(values, values[1:])), values
    fresh = kernel_inception_distance(train, extractor.features(shapes(N, seed=3).images), rng=rng)
    noisy = kernel_inception_distance(train, noised[2], rng=rng)
    assert abs(fresh[0]) < 2 * fresh[1] and noisy[0] > max(noisy[1], 10 * abs(fresh[0]))
    shifted = frechet_distance(train, extractor.features(np.roll(real.images, 5, axis=3)))
    assert shifted > frechet_distance(train, extractor.features(shapes(N, seed=3).images))


def test_classifier_accuracy_near_one_with_right_labels_and_chance_when_shuffled(extractor: FeatureExtractor, holdout: ImageSet) -> None:
    assert extractor.classes == ["disc", "square"]
    assert extractor.accuracy(holdout.images, holdout.labels) >= 0.95
    shuffled = np.random.default_rng(0).permutation(np.tile(holdout.labels, 5))
    assert 0.4 <= extractor.accuracy(np.tile(holdout.images, (5, 1, 1, 1)), shuffled) <= 0.6
    assert "trained on the 60 real training images as a classifier of 2 classes, 100 steps (100.0 epochs)" in extractor.describe(0.97)


def test_feature_extractor_is_reproducible(real: ImageSet, extractor: FeatureExtractor) -> None:
    again = FeatureExtractor.fit(real, seed=0)
    np.testing.assert_array_equal(again.features(real.images[:8]), extractor.features(real.images[:8]))


def test_fresh_synthetic_images_pass(fresh_report) -> None:
    found = scores(fresh_report)
    assert found["fd"].value < 3 * found["fd"].reference + 0.1 and found["fd"].reference > 0
    assert abs(found["kid"].value) < 0.5 and found["precision"].value > 0.7 and found["recall"].value > 0.7
    assert found["sample_accuracy"].value >= 0.95 and found["sample_accuracy"].reference >= 0.95
    assert found["tstr_accuracy"].value >= 0.9 and found["tstr_accuracy"].reference >= 0.95
    assert found["memorisation_share_pixels"].value < 0.2 and found["memorisation_share_pixels"].low <= 0.1
    assert found["near_duplicate_share"].value == 0
    assert fresh_report.verdict == "PASS", fresh_report.verdict_detail()
    table = fresh_report.sections["utility"].tables["accuracy_per_class"]
    assert list(table.index) == ["disc", "square"] and table["synthetic images"].tolist() == [30, 30]
    assert "synthgen small CNN" in fresh_report.context["feature extractor"]


def test_copies_of_training_images_are_flagged(copy_report) -> None:
    found = scores(copy_report)
    assert found["fd"].value == pytest.approx(0, abs=1e-6) and found["precision"].value == 1.0
    assert found["memorisation_share_pixels"].value == 1.0 and found["memorisation_share_pixels"].low > 0.9
    assert found["near_duplicate_share"].value == 1.0 and found["near_duplicate_share"].reference == 0.0
    assert found["near_duplicate_share"].note == "60 of 60 synthetic images (60 identical to a training image)"
    assert copy_report.verdict == "FAIL"
    assert {result.gate for result in copy_report.gate_results if result.passed is False} == set(IMAGE_GATES)


def test_far_off_noise_has_no_precision(real: ImageSet, extractor: FeatureExtractor) -> None:
    noise = np.random.default_rng(0).uniform(-1, 1, real.images.shape).astype(np.float32)
    values = prdc(extractor.features(real.images), extractor.features(noise))
    assert values["precision"] <= 0.05 and values["coverage"] <= 0.05


def test_html_shows_the_closest_pairs_grid_and_json_holds_no_pixels(copy_report, real: ImageSet) -> None:
    html = copy_report.to_html()
    assert html.count("<img class='grid-image' src=\"data:image/png;base64,") == 2  # synthetic samples and closest pairs
    assert "REAL TRAINING IMAGE" in html and "show real training images" in html
    tiles = grid_tiles(html, "Closest synthetic–training pairs", group=2)
    assert len(tiles) == 16  # 8 pairs: each copy beside the training image it copies
    for synthetic, training in zip(tiles[::2], tiles[1::2]):
        assert np.abs(synthetic - training).max() < 0.01
        assert min(np.abs(training - image[0]).max() for image in real.images) < 0.01
    document = json.loads(copy_report.to_json())
    grid = document["sections"]["privacy"]["figures"]["closest_pairs"]
    assert grid["real_images"] is True and "png_base64" not in grid and "base64" not in json.dumps(document)


def test_show_real_images_false_leaves_no_real_pixels(fresh_report, real: ImageSet, holdout: ImageSet) -> None:
    html = fresh_report.to_html()
    assert "show real training images" not in html and "not shown (show_real_images=False)" in html
    tiles = grid_tiles(html, "Closest synthetic–training pairs") + grid_tiles(html, "Synthetic samples")
    assert len(tiles) == 8 + 16
    for tile in tiles:
        assert min(np.abs(tile - image[0]).max() for image in real.images) > 0.05


def test_report_renders_image_grids_escaped_and_keeps_their_pixels_out_of_json() -> None:
    evil = "<script>alert(1)</script>"
    grid = {"kind": "image_grid", "title": evil, "png_base64": "iVBORw0KGgo=", "caption": evil, "real_images": False}
    section = SectionResult([Score("privacy", "Near-duplicate share", 0.0, reference=0.0)], figures={"grid": grid})
    report = Report({"privacy": section}, {}, gates=[], wording=IMAGE_WORDING)
    html = report.to_html()
    assert evil not in html and "<img class='grid-image' src=\"data:image/png;base64,iVBORw0KGgo=\"" in html
    assert "show real training images" not in html and "Memorisation share" in html and "Column Shapes" not in html
    assert json.loads(report.to_json())["sections"]["privacy"]["figures"]["grid"] == {
        "kind": "image_grid", "title": evil, "caption": evil, "real_images": False, "png": "omitted; shown in the HTML report only",
    }
    shown = Report({"privacy": replace(section, figures={"grid": {**grid, "real_images": True}})}, {}, gates=[], wording=IMAGE_WORDING)
    assert "show real training images" in shown.to_html()


def test_unlabelled_images_use_the_rotation_task_and_skip_label_scores() -> None:
    real, holdout = shapes(N, 0, labelled=False), shapes(N, 1, labelled=False)
    report = evaluate_images(real, shapes(N, 2, labelled=False), holdout=holdout, feature_steps=60, progress=False)
    assert "rotation task" in report.context["feature extractor"]
    assert "sample_accuracy" not in set(report.scores["key"]) and "need labelled images" in report.sections["utility"].notes[0]
    json.dumps(json.loads(report.to_json()))


def test_without_holdout_memorisation_is_not_evaluated(real: ImageSet) -> None:
    report = evaluate_images(real, shapes(N, 2), feature_steps=40, progress=False)
    found = scores(report)
    assert np.isnan(found["memorisation_share_pixels"].value) and pd.isna(found["fd"].reference)
    assert report.verdict == "NOT EVALUATED" and "tstr_accuracy" not in found


def test_synthetic_images_in_another_size_and_window_are_brought_to_the_training_ones(real: ImageSet, holdout: ImageSet) -> None:
    wide = IntensityMapping(-255, 510, "pixel")  # the same grey levels in another window
    copies = ImageSet(wide.to_unit(real.physical()).repeat(2, axis=2).repeat(2, axis=3), real.labels, wide)
    assert copies.images.shape[-1] == 2 * SIDE and np.abs(copies.images - real.images.repeat(2, axis=2).repeat(2, axis=3)).max() > 0.3
    report = evaluate_images(real, copies, holdout=holdout, feature_steps=20, progress=False)
    distances = report.sections["privacy"].figures["dcr_synthetic_to_train"]
    assert np.max(distances) < 0.15 and scores(report)["memorisation_share_pixels"].value == 1.0  # only resampling blurs them


def test_bad_inputs_are_refused(real: ImageSet, tmp_path) -> None:
    with pytest.raises(InvalidDataError, match="'circle'"):
        evaluate_images(real, replace(real, labels=np.full(N, "circle", dtype=object)), progress=False)
    rgb = ImageSet(np.repeat(real.images, 3, axis=1), real.labels, IntensityMapping(0, 255, "pixel", photometric="RGB"))
    with pytest.raises(InvalidDataError, match="3 channel"):
        evaluate_images(real, rgb, progress=False)
    with pytest.raises(InvalidDataError, match="'HU' units"):
        evaluate_images(real, replace(real, mapping=IntensityMapping(-1000, 1000, "HU")), progress=False)
    with pytest.raises(InvalidDataError, match="at least 6"):
        evaluate_images(real, replace(real, images=real.images[:3], labels=real.labels[:3]), progress=False)


class FakeInception(nn.Module):
    """Stands in for torchvision's Inception v3: 3 x 299 x 299 in, ``fc`` of pooled features out (64 here, not 2048)."""

    def __init__(self, **options: object) -> None:
        super().__init__()
        assert options == {"weights": None, "aux_logits": True, "transform_input": False, "init_weights": False}
        self.pool, self.mix, self.fc = nn.AdaptiveAvgPool2d(4), nn.Linear(48, 64), nn.Linear(64, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1:] == (3, 299, 299) and x.min() >= -1 and x.max() <= 1
        return self.fc(torch.relu(self.mix(self.pool(x).flatten(1))))


@pytest.fixture
def fake_torchvision(monkeypatch: pytest.MonkeyPatch) -> None:
    models = types.ModuleType("torchvision.models")
    models.inception_v3 = FakeInception
    package = types.ModuleType("torchvision")
    package.__spec__, package.__version__, package.models = importlib.machinery.ModuleSpec("torchvision", None), "0.0-fake", models
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.models", models)


def test_inception_fid_with_local_weights(fake_torchvision: None, real: ImageSet, holdout: ImageSet, tmp_path) -> None:
    weights = tmp_path / "inception_v3_google.pth"
    torch.save(FakeInception(weights=None, aux_logits=True, transform_input=False, init_weights=False).state_dict(), weights)
    report = evaluate_images(real, replace(real), holdout=holdout, feature_steps=20, inception_weights=weights, progress=False)
    fid = scores(report)["inception_fid"]
    assert fid.value == pytest.approx(0, abs=1e-6) and fid.reference > 0.01 and "torchvision 0.0-fake" in fid.method
    weights.write_bytes(b"not a state dict")
    with pytest.raises(ModelFileError, match="inception_v3_google.pth is not a torchvision Inception v3 state dict"):
        evaluate_images(real, replace(real), inception_weights=weights, feature_steps=20, progress=False)


def test_inception_fid_without_torchvision_says_what_is_needed(real: ImageSet, tmp_path) -> None:
    if importlib.util.find_spec("torchvision") is not None:
        pytest.skip("torchvision is installed")
    weights = tmp_path / "inception_v3_google.pth"
    weights.write_bytes(b"weights")
    with pytest.raises(InvalidArgumentError, match=r"inception_v3_google.pth needs torchvision, which is not installed.*pip install torchvision"):
        evaluate_images(real, real, inception_weights=weights, progress=False)
