"""The CLI verbs on images: phantoms written as DICOM in, a conditional model, de-identified DICOM out."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from click.testing import CliRunner
from phantoms import PATIENT, write_phantom_dicom
from pydicom.pixels import apply_modality_lut

from synthgen.cli.main import main

AUGMENT = ["--image-size", "16", "--steps", "30", "--seed", "0", "--quiet"]
FIT = [*AUGMENT, "--batch-size", "8"]


@pytest.fixture(scope="module")
def phantom_model(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("ct_slices")
    write_phantom_dicom(folder, n=24, size=32, seed=0)
    model = folder.parent / "ct.sgz"
    result = CliRunner().invoke(main, ["fit", str(folder), "--labels", str(folder / "labels.csv"),
                                       "--label-column", "finding", "-o", str(model), "--window", "40,400",
                                       "--holdout", "0.25", *FIT])
    assert result.exit_code == 0, result.output
    return folder, model


def test_fit_reports_the_images_and_classes(phantom_model):
    _, model = phantom_model
    shown = CliRunner().invoke(main, ["info", str(model)])
    assert shown.exit_code == 0, shown.output
    assert "16 x 16 px, 1 channel(s), CT, values -160 to 240 HU" in shown.output
    assert "label finding: lesion:" in shown.output and "normal:" in shown.output
    details = json.loads(CliRunner().invoke(main, ["info", str(model), "--json"]).output)
    assert details["kind"] == "image" and details["training"]["images"] == 18  # 6 of 24 held out
    assert details["reading"]["window"] == "40,400" and details["reading"]["label_column"] == "finding"


def test_sample_writes_conditioned_dicom_that_reads_back_in_hu(phantom_model, tmp_path):
    _, model = phantom_model
    out = tmp_path / "synthetic"
    result = CliRunner().invoke(main, ["sample", str(model), "-n", "7", "--condition", "finding=lesion",
                                       "-o", str(out), "--format", "dicom", "--seed", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    files = sorted(out.glob("*.dcm"))
    assert len(files) == 7
    manifest = pd.read_csv(out / "labels.csv")
    assert set(manifest["finding"]) == {"lesion"}
    study_uids = set()
    for path in files:
        ds = pydicom.dcmread(path)
        hu = apply_modality_lut(ds.pixel_array, ds)
        assert ds.Modality == "CT" and ds.RescaleType == "HU" and "SYNTHETIC" in ds.SeriesDescription
        assert ds.PatientIdentityRemoved == "YES" and ds.BurnedInAnnotation == "NO"
        assert hu.shape == (16, 16) and -160 <= hu.min() and hu.max() <= 240  # inside the training window
        study_uids.add(ds.StudyInstanceUID)
        for value in (str(v) for v in PATIENT.values() if len(str(v)) >= 4):  # names, IDs, dates
            assert value not in str(ds)
    assert len(study_uids) == 1  # one study per sampled batch


def test_sample_other_formats_and_bare_label(phantom_model, tmp_path):
    _, model = phantom_model
    runner = CliRunner()
    npz = tmp_path / "npz"
    assert runner.invoke(main, ["sample", str(model), "-n", "5", "-c", "normal", "-o", str(npz), "--format", "npz",
                                "--quiet"]).exit_code == 0
    with np.load(npz / "images.npz") as archive:
        assert archive["images"].shape == (5, 16, 16) and set(archive["labels"]) == {"normal"}
    png = tmp_path / "png"
    assert runner.invoke(main, ["sample", str(model), "-n", "4", "-o", str(png), "--format", "png", "--quiet"]).exit_code == 0
    assert len(list(png.rglob("*.png"))) == 4


def test_label_from_a_dicom_tag(tmp_path):
    folder = tmp_path / "mr"
    write_phantom_dicom(folder / "a", n=6, size=16, seed=1, series_description="T1 AXIAL")
    write_phantom_dicom(folder / "b", n=6, size=16, seed=2, series_description="T2 AXIAL")
    for csv in folder.rglob("labels.csv"):
        csv.unlink()
    model = tmp_path / "mr.sgz"
    result = CliRunner().invoke(main, ["fit", str(folder), "--label-tag", "SeriesDescription", "-o", str(model), *FIT])
    assert result.exit_code == 0, result.output
    assert "T1 AXIAL: 6" in result.output and "T2 AXIAL: 6" in result.output


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["-n", "3", "-c", "finding=nodule"], "unknown label 'nodule'"),
        (["-n", "3", "-c", "size=big"], "this model's label is 'finding'"),
        (["-n", "3", "-c", "lesion", "-c", "normal"], "one --condition"),
    ],
)
def test_bad_sample_requests_are_refused_and_write_nothing(phantom_model, tmp_path, arguments, message):
    _, model = phantom_model
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["sample", str(model), "-o", str(out), "--quiet", *arguments])
    assert result.exit_code == 1 and message in result.output
    assert not out.exists()


def test_bad_image_inputs_get_clear_errors(tmp_path, phantom_model):
    folder, _ = phantom_model
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("nothing to see")
    plan = tmp_path / "plans"
    plan.mkdir()
    dataset = pydicom.Dataset()
    dataset.SOPClassUID = pydicom.uid.RTPlanStorage
    dataset.SOPInstanceUID = pydicom.uid.generate_uid()
    dataset.Modality = "RTPLAN"
    dataset.file_meta = pydicom.dataset.FileMetaDataset()
    dataset.file_meta.MediaStorageSOPClassUID = dataset.SOPClassUID
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    dataset.save_as(plan / "plan.dcm", enforce_file_format=True)
    runner = CliRunner()
    cases = [
        ([str(empty)], "empty"),
        ([str(plan)], "RTPLAN"),
        ([str(folder), "--labels", str(folder / "labels.csv"), "--label-column", "diagnosis"], "diagnosis"),
        ([str(folder), "--metadata", str(folder / "labels.csv")], "apply to tables, not images"),
    ]
    for arguments, message in cases:
        model = tmp_path / "m.sgz"
        result = runner.invoke(main, ["fit", *arguments, "-o", str(model), *FIT])
        assert result.exit_code == 1, (arguments, result.output)
        assert message in result.output, (arguments, result.output)
        assert not model.exists()


def test_evaluate_reads_every_output_format_back_on_the_models_scale(phantom_model, tmp_path):
    folder, model = phantom_model
    runner = CliRunner()
    distances = {}
    for fmt in ("dicom", "png", "npz"):
        out = tmp_path / fmt
        assert runner.invoke(main, ["sample", str(model), "-n", "12", "-o", str(out), "--format", fmt, "--seed", "2",
                                    "--quiet"]).exit_code == 0
        report = tmp_path / f"{fmt}.json"
        result = runner.invoke(main, ["evaluate", str(model), "--real", str(folder), "--synthetic", str(out),
                                      "--json", str(report), "-o", str(tmp_path / f"{fmt}.html"), "--quiet"])
        assert result.exit_code in (0, 3), result.output
        scores = {row["metric"]: row for row in json.loads(report.read_text())["scores"]}
        assert {"FD", "KID", "Precision", "Recall", "Sample accuracy", "TSTR accuracy",
                "Memorisation share (pixels)"} <= set(scores)
        # 30 steps make poor images: further from the training split than the real holdout is.
        assert scores["FD"]["value"] > scores["FD"]["reference"]
        assert "<img" in (tmp_path / f"{fmt}.html").read_text()
        distances[fmt] = scores["FD"]["value"]
    # The same 12 sampled images, written three ways, score alike (PNG only loses 8-bit precision).
    assert distances["npz"] == pytest.approx(distances["dicom"], rel=0.02)
    assert distances["png"] == pytest.approx(distances["dicom"], rel=0.1)


def test_augment_balances_an_image_set_and_marks_synthetic_images(tmp_path):
    folder = tmp_path / "images"
    write_phantom_dicom(folder, n=16, size=16, seed=3, lesion_fraction=0.25)
    test = tmp_path / "test"
    write_phantom_dicom(test, n=12, size=16, seed=4, lesion_fraction=0.5)
    out = tmp_path / "augmented"
    result = CliRunner().invoke(main, ["augment", str(folder), "--labels", str(folder / "labels.csv"),
                                       "--label-column", "finding", "--balance", "-o", str(out), "--check", str(test),
                                       "--check-seeds", "2", *AUGMENT])
    assert result.exit_code == 0, result.output
    manifest = pd.read_csv(out / "labels.csv")
    real = pd.read_csv(folder / "labels.csv")["finding"].value_counts()
    assert (~manifest["synthetic"]).sum() == 16
    counts = manifest["finding"].value_counts()
    assert counts["lesion"] == counts["normal"] == real.max()  # the minority topped up to the majority
    assert set(manifest.loc[manifest["synthetic"], "finding"]) == {"lesion"}
    assert len(list(out.rglob("*.png"))) == len(manifest)
    assert "Verdict:" in result.output and "synthetic images are never scored" in result.output


def test_augment_images_refuses_bad_requests(tmp_path, phantom_model):
    folder, _ = phantom_model
    runner = CliRunner()
    for arguments, message in [
        (["--balance", "--ratio", "2"], "exactly one of balance and ratio"),
        (["--ratio", "0.5"], "ratio must be above 1"),
        (["--balance", "--target", "diagnosis"], "these images' label is 'finding'"),
        (["--balance", "--check", str(tmp_path)], "its labels go in"),
    ]:
        out = tmp_path / "out"
        result = runner.invoke(main, ["augment", str(folder), "--labels", str(folder / "labels.csv"),
                                      "--label-column", "finding", "-o", str(out), *AUGMENT, *arguments])
        assert result.exit_code == 1 and message in result.output, (arguments, result.output)
        assert not out.exists()
