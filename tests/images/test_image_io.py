"""Image data in and out: readers recover physical values, order and labels, and refuse bad input
clearly; writers produce valid files that read back to the written values and carry nothing from
the inputs."""
from __future__ import annotations

import csv
import shutil
from datetime import datetime
from importlib.metadata import EntryPoint
from pathlib import Path

import numpy as np
import pydicom
import pydicom.examples
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian, SecondaryCaptureImageStorage

from phantoms import LESION, NORMAL, PATIENT, ct_dataset, phantom_images, save, write_phantom_dicom
from synthgen import registry
from synthgen.images import io as image_io
from synthgen.images.common import CT_FULL_RANGE
from synthgen.images.dicom import DicomFolderReader
from synthgen.images.folder import ImageFolderReader
from synthgen.images.npz import NpzReader
from synthgen.images.reading import read_images
from synthgen.images.types import ImageSet, IntensityMapping
from synthgen.errors import InvalidArgumentError, InvalidDataError, MetadataError, ModelFileError, PluginError
from synthgen.images.io import write_images

N, SIZE, SEED = 10, 16, 3
TEST_FILES = Path(get_testdata_file("CT_small.dcm")).parent


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    folder = tmp_path_factory.mktemp("phantom") / "ct"
    return folder, write_phantom_dicom(folder, N, SIZE, SEED)


@pytest.fixture(scope="module")
def phantom_set(phantom: tuple[Path, list[Path]]) -> ImageSet:
    folder, _ = phantom
    return read_images(folder, labels=folder / "labels.csv", label_column="finding", image_size=SIZE)


def _copy(files: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for file in files:
        shutil.copy(file, folder / file.name)
    return folder


def _modality_values(path: Path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return apply_modality_lut(ds.pixel_array, ds)


# --- the shared types --------------------------------------------------------------------------


def test_intensity_mapping_scales_clips_and_round_trips_through_its_state() -> None:
    mapping = IntensityMapping(-160.0, 240.0, "HU", "CT")
    unit = mapping.to_unit(np.array([-1000.0, -160.0, 40.0, 240.0, 900.0]))
    np.testing.assert_allclose(unit, [-1, -1, 0, 1, 1])
    assert unit.dtype == np.float32
    np.testing.assert_allclose(mapping.to_physical(np.array([-1.5, -1.0, 0.0, 0.5, 1.0])), [-160, -160, 40, 140, 240])
    assert IntensityMapping.from_state(mapping.get_state()) == mapping
    with pytest.raises(ModelFileError, match="intensity mapping"):
        IntensityMapping.from_state({"low": 1.0, "high": 0.0, "unit": "HU"})
    with pytest.raises(InvalidArgumentError, match="unit"):
        IntensityMapping(0, 1, "kelvin")


def test_image_set_checks_its_shape_and_normalises_labels() -> None:
    mapping = IntensityMapping(0, 255, "pixel")
    images = ImageSet(np.zeros((2, 1, 4, 4)), [1, "b"], mapping)
    assert images.labels.dtype == object and list(images.labels) == ["1", "b"] and images.classes == ["1", "b"]
    assert images.images.dtype == np.float32 and len(images) == 2
    with pytest.raises(InvalidArgumentError, match="H == W"):
        ImageSet(np.zeros((2, 1, 4, 5)), ["a", "b"], mapping)
    with pytest.raises(InvalidArgumentError, match="3 channel"):
        ImageSet(np.zeros((2, 3, 4, 4)), ["a", "b"], mapping)
    with pytest.raises(InvalidArgumentError, match="2 images but 1 labels"):
        ImageSet(np.zeros((2, 1, 4, 4)), ["a"], mapping)


# --- registry ----------------------------------------------------------------------------------


def test_image_readers_have_their_own_group_and_stay_out_of_columns(monkeypatch) -> None:
    builtins = {"dicom": DicomFolderReader, "folder": ImageFolderReader, "npz": NpzReader}
    assert registry.image_readers().items() >= builtins.items()  # plus installed plugins' (synthgen-nifti in CI)
    assert not set(registry.image_readers()) & set(registry.column_transformers())
    with pytest.raises(MetadataError, match="no transformer named 'dicom'"):
        registry.transformer_for("scan", {"sdtype": "categorical", "transformer": "dicom"})

    def install(group: str, *entries: tuple[str, str]) -> None:
        points = [EntryPoint(name=name, value=value, group=group) for name, value in entries]
        monkeypatch.setattr(registry, "entry_points", lambda group: [p for p in points if p.group == group])
        registry.plugins.cache_clear()

    try:
        install(registry.IMAGE_READER_GROUP, ("odd", "synthgen.data.continuous:ContinuousTransformer"))
        with pytest.raises(PluginError, match="image reader plugin 'odd'.*not a subclass of ImageReader"):
            registry.image_readers()
        install(registry.TRANSFORMER_GROUP, ("dicom", "synthgen.images.dicom:DicomFolderReader"))
        with pytest.raises(PluginError, match="column transformer plugin 'dicom'.*not a subclass of ColumnTransformer"):
            registry.column_transformers()
    finally:
        monkeypatch.undo()
        registry.plugins.cache_clear()


# --- DICOM reader ------------------------------------------------------------------------------


def test_phantom_series_reads_back_in_hu_sorted_by_position_with_csv_labels(phantom, phantom_set) -> None:
    _, paths = phantom
    hu, labels = phantom_images(N, SIZE, SEED)
    assert phantom_set.mapping == IntensityMapping(*CT_FULL_RANGE, "HU", "CT", "MONOCHROME2")
    assert phantom_set.images.shape == (N, 1, SIZE, SIZE)
    assert phantom_set.images.min() >= -1 and phantom_set.images.max() <= 1
    np.testing.assert_allclose(phantom_set.physical()[:, 0], hu, atol=0.01)  # through RescaleIntercept -1024
    assert phantom_set.sources == [str(path) for path in paths]  # InstanceNumber runs the other way
    assert list(phantom_set.labels) == list(labels) and phantom_set.label_name == "finding"
    assert phantom_set.classes == [LESION, NORMAL]


def test_slices_without_position_are_ordered_by_instance_number(phantom, tmp_path) -> None:
    _, paths = phantom
    for path in paths:
        ds = pydicom.dcmread(path)
        del ds.ImagePositionPatient
        save(ds, tmp_path / path.name)
    images = read_images(tmp_path, image_size=SIZE)
    assert images.sources == [str(tmp_path / path.name) for path in reversed(paths)]


def test_shipped_ct_series_is_sorted_along_the_slice_normal() -> None:
    # CT5N numbers its slices from the top: instance 6 has the highest z
    images = read_images(TEST_FILES / "dicomdirtests" / "98892001" / "CT5N", image_size=16)
    assert [Path(source).name for source in images.sources] == ["3353", "3023", "2693", "2392", "2062"]
    assert images.mapping.unit == "HU"


def test_label_tag_labels_each_file_and_series_come_in_folder_order(tmp_path) -> None:
    write_phantom_dicom(tmp_path / "b", 3, 8, 1, series_description="PORTAL VENOUS")
    write_phantom_dicom(tmp_path / "a", 4, 8, 2, series_description="ARTERIAL")
    images = read_images(tmp_path, label_tag="SeriesDescription", image_size=8)
    assert list(images.labels) == ["ARTERIAL"] * 4 + ["PORTAL VENOUS"] * 3
    assert images.label_name == "SeriesDescription"
    with pytest.raises(InvalidArgumentError, match="'NoSuchKeyword' is not a DICOM keyword"):
        read_images(tmp_path, label_tag="NoSuchKeyword")
    with pytest.raises(InvalidDataError, match="has no BodyPartExamined value"):
        read_images(tmp_path, label_tag="BodyPartExamined")


def test_window_presets_and_explicit_windows(phantom, phantom_set) -> None:
    folder, _ = phantom
    lung = read_images(folder, image_size=SIZE, window="lung")
    assert (lung.mapping.low, lung.mapping.high) == (-1350.0, 150.0)
    np.testing.assert_allclose(lung.images, lung.mapping.to_unit(phantom_set.physical()), atol=1e-5)
    preset = read_images(folder, image_size=SIZE, window="soft-tissue")
    for window in ((40, 400), "40,400"):
        np.testing.assert_array_equal(read_images(folder, image_size=SIZE, window=window).images, preset.images)
    with pytest.raises(InvalidArgumentError, match="unknown window 'liver'"):
        read_images(folder, window="liver")
    with pytest.raises(InvalidArgumentError, match="positive width"):
        read_images(folder, window=(40, 0))
    mr = pydicom.examples.get_path("mr")
    with pytest.raises(InvalidArgumentError, match="needs CT images; these are MR"):
        read_images(mr, window="lung")
    assert read_images(mr, window=(600, 1600)).mapping.low == -200.0


def test_monochrome1_is_inverted_to_match_monochrome2(tmp_path) -> None:
    stored = np.random.default_rng(0).integers(0, 4096, (8, 8)).astype(np.uint16)
    common = {"Modality": "CR", "BitsStored": 12, "HighBit": 11}
    mono2 = ct_dataset(stored, **common)
    mono1 = ct_dataset((4095 - stored).astype(np.uint16), PhotometricInterpretation="MONOCHROME1", **common)
    for ds in (mono1, mono2):
        for keyword in ("RescaleSlope", "RescaleIntercept", "RescaleType"):
            delattr(ds, keyword)
    one, two = (read_images(save(ds, tmp_path / f"{name}.dcm"), image_size=8) for name, ds in (("m1", mono1), ("m2", mono2)))
    assert one.mapping.unit == "raw" and one.mapping.modality == "CR"
    np.testing.assert_array_equal(one.physical(), two.physical())
    np.testing.assert_allclose(two.physical()[0, 0], np.clip(stored, two.mapping.low, two.mapping.high), atol=1e-3)


def test_multi_frame_files_are_sliced_into_frames_in_order(tmp_path) -> None:
    stored = (np.arange(3, dtype=np.uint16)[:, None, None] * 100 + 1000 + np.zeros((3, 8, 8), np.uint16)).astype(np.uint16)
    path = save(ct_dataset(stored), tmp_path / "volume.dcm")
    images = read_images(path, image_size=8)
    np.testing.assert_allclose(images.physical()[:, 0, 0, 0], [-24, 76, 176], atol=0.01)
    assert images.sources == [f"{path}[0]", f"{path}[1]", f"{path}[2]"]
    assert len(read_images(pydicom.examples.get_path("rt_dose"), image_size=8)) == 15


def test_pydicom_examples_ct_mr_and_colour_ultrasound() -> None:
    ct_path = pydicom.examples.get_path("ct")
    full = read_images(ct_path, image_size=128)  # stored size: kept exactly
    expected = np.clip(_modality_values(ct_path), *CT_FULL_RANGE)
    np.testing.assert_allclose(full.physical()[0, 0], expected, atol=0.01)
    small = read_images(ct_path, image_size=32)
    assert small.images.shape == (1, 1, 32, 32)
    assert abs(small.physical().mean() - expected.mean()) < 0.01 * expected.std()  # antialiased resize keeps the mean

    mr_path = pydicom.examples.get_path("mr")
    mr = read_images(mr_path, image_size=64)
    low, high = np.percentile(_modality_values(mr_path), [1, 99.5])
    assert mr.mapping.unit == "raw" and mr.mapping.modality == "MR"
    assert mr.mapping.low == pytest.approx(low) and mr.mapping.high == pytest.approx(high)

    us_path = pydicom.examples.get_path("rgb_color")  # 240 x 320 RGB: padded top and bottom to 320
    us = read_images(us_path, image_size=320)
    assert us.mapping == IntensityMapping(0, 255, "pixel", "US", "RGB") and us.images.shape == (1, 3, 320, 320)
    original = pydicom.dcmread(us_path).pixel_array.transpose(2, 0, 1)
    np.testing.assert_allclose(us.physical()[0, :, 40:280], original, atol=1e-3)
    assert (us.physical()[0, :, :40] == original.min()).all()


# --- DICOM errors ------------------------------------------------------------------------------


def test_folders_without_images_are_named_in_the_error(tmp_path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidDataError, match="'.*empty': no images found"):
        read_images(empty)
    (empty / "notes.txt").write_text("not an image")
    with pytest.raises(InvalidDataError, match="'.*empty': no images found"):
        read_images(empty)
    with pytest.raises(InvalidDataError, match="1 file.*none of them DICOM"):
        DicomFolderReader().read(empty)
    with pytest.raises(InvalidDataError, match="does not exist"):
        read_images(tmp_path / "missing")


def test_dicom_without_pixel_data_is_reported_by_kind(tmp_path) -> None:
    plan = Path(get_testdata_file("rtplan.dcm"))
    folder = _copy([plan], tmp_path / "plans")
    shutil.copy(plan, folder / "second_plan.dcm")
    (folder / "README.txt").write_text("treatment plans")
    with pytest.raises(InvalidDataError, match=r"2 DICOM file\(s\), none with pixel data \(RTPLAN: 2\); 1 non-DICOM"):
        read_images(folder)


def test_mixed_channels_and_mixed_modalities_are_refused(tmp_path) -> None:
    mixed = _copy([pydicom.examples.get_path("mr"), pydicom.examples.get_path("rgb_color")], tmp_path / "mixed")
    with pytest.raises(InvalidDataError, match="mixes greyscale and colour.*MR_small.dcm.*examples_rgb_color.dcm"):
        read_images(mixed)
    with pytest.raises(InvalidDataError, match=r"mixes image kinds.*CR \(raw\): 3, CT \(HU\): 4"):
        read_images(TEST_FILES / "dicomdirtests" / "77654033")


def test_every_image_needs_a_label_from_the_csv(phantom, tmp_path) -> None:
    _, paths = phantom
    folder = _copy(paths, tmp_path / "ct")
    rows = [["file", "finding", "site"]] + [[path.name, "lesion", "lung"] for path in paths[1:]]
    with (folder / "labels.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    with pytest.raises(InvalidDataError, match=f"{paths[0].name}' has no row in labels file"):
        read_images(folder, labels=folder / "labels.csv", label_column="finding")
    rows.append([paths[0].name, "", "lung"])
    with (folder / "labels.csv").open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    with pytest.raises(InvalidDataError, match=f"{paths[0].name}' has an empty 'finding' value"):
        read_images(folder, labels=folder / "labels.csv", label_column="finding")
    with pytest.raises(InvalidArgumentError, match="choose one with label_column"):
        read_images(folder, labels=folder / "labels.csv")
    with pytest.raises(InvalidArgumentError, match="no label column 'grade'"):
        read_images(folder, labels=folder / "labels.csv", label_column="grade")


def test_missing_decoder_names_the_file_syntax_and_extra(tmp_path) -> None:
    path = Path(get_testdata_file("MR_small_jpeg_ls_lossless.dcm"))
    try:
        pydicom.dcmread(path).pixel_array
    except RuntimeError:
        pass
    else:
        pytest.skip("a JPEG-LS decoder is installed here")
    with pytest.raises(InvalidDataError, match=r"MR_small_jpeg_ls_lossless.dcm'.*JPEG-LS Lossless.*synthgen\[dicom-codecs\]"):
        read_images(path)


# --- PNG/JPEG folders and npz ------------------------------------------------------------------


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_png_folder_labels_are_sub_folder_names(tmp_path) -> None:
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (3, 8, 8), dtype=np.uint8)
    _png(tmp_path / "cats" / "a.png", grey[0])
    _png(tmp_path / "cats" / "deeper" / "b.png", grey[1])
    _png(tmp_path / "dogs" / "c.png", grey[2])
    _png(tmp_path / "top.png", rng.integers(0, 256, (4, 8), dtype=np.uint8))  # wide: padded to square
    _png(tmp_path / ".hidden" / "d.png", grey[0])
    images = read_images(tmp_path, image_size=8)
    assert list(images.labels) == ["cats", "cats", "dogs", ""] and images.label_name == "class"
    assert images.mapping == IntensityMapping(0, 255, "pixel", "OT", "MONOCHROME2")
    np.testing.assert_allclose(images.physical()[:3, 0], grey, atol=1e-3)
    colour = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    _png(tmp_path / "colour" / "e.png", colour)
    with pytest.raises(InvalidDataError, match="mixes greyscale and colour"):
        read_images(tmp_path)
    only_colour = read_images(tmp_path / "colour", image_size=6)
    assert only_colour.images.shape == (1, 3, 6, 6) and only_colour.mapping.photometric == "RGB"
    np.testing.assert_allclose(only_colour.physical()[0], colour.transpose(2, 0, 1), atol=1e-3)
    with pytest.raises(InvalidArgumentError, match="window applies to DICOM"):
        read_images(tmp_path / "colour", window="lung")


def test_sixteen_bit_png_keeps_its_range(tmp_path) -> None:
    values = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
    _png(tmp_path / "deep.png", values)
    images = read_images(tmp_path, image_size=8)
    assert images.mapping.high == 65535
    np.testing.assert_allclose(images.physical()[0, 0], values, atol=0.01)


def test_npz_in_medmnist_layout(tmp_path) -> None:
    rng = np.random.default_rng(0)
    grey = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
    np.savez(tmp_path / "pneumonia.npz", train_images=grey, train_labels=np.array([[0], [1], [1], [0], [1]], np.uint8),
             val_images=grey[:1], val_labels=np.zeros((1, 1), np.uint8))
    images = read_images(tmp_path / "pneumonia.npz", image_size=28)
    assert list(images.labels) == ["0", "1", "1", "0", "1"] and images.label_name == "label"
    np.testing.assert_allclose(images.physical()[:, 0], grey, atol=1e-3)
    assert read_images(tmp_path / "pneumonia.npz", image_size=16).images.shape == (5, 1, 16, 16)
    colour = rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "derma.npz", train_images=colour, train_labels=np.array([3, 6]))
    assert read_images(tmp_path / "derma.npz", image_size=8).mapping.photometric == "RGB"
    np.savez(tmp_path / "bad.npz", images=grey, labels=np.zeros(5))
    with pytest.raises(InvalidDataError, match=r"lacks \['train_images', 'train_labels'\].*it has \['images', 'labels'\]"):
        read_images(tmp_path / "bad.npz")
    np.savez(tmp_path / "chest.npz", train_images=grey, train_labels=np.zeros((5, 14), np.uint8))
    with pytest.raises(InvalidDataError, match="one integer class per image"):
        read_images(tmp_path / "chest.npz")


def test_reader_choice_is_explicit_when_a_folder_is_ambiguous(phantom, tmp_path) -> None:
    _, paths = phantom
    folder = _copy(paths, tmp_path / "both")
    _png(folder / "screenshot.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(InvalidDataError, match=r"several image readers \(dicom, folder\)"):
        read_images(folder)
    assert len(read_images(folder, reader="dicom", image_size=8)) == N
    with pytest.raises(InvalidArgumentError, match="no image reader named 'tiff'"):
        read_images(folder, reader="tiff")
    with pytest.raises(InvalidArgumentError, match="image_size"):
        read_images(folder, reader="dicom", image_size=0)


# --- writers -----------------------------------------------------------------------------------


def test_dicom_output_reads_back_to_the_written_hu_with_fresh_identity(phantom_set, tmp_path) -> None:
    before = datetime.now().strftime("%Y%m%d")
    paths = write_images(phantom_set, tmp_path / "out", "dicom")
    after = datetime.now().strftime("%Y%m%d")
    assert len(paths) == N and all(path.read_bytes()[128:132] == b"DICM" for path in paths)
    datasets = [pydicom.dcmread(path) for path in paths]
    back = np.stack([apply_modality_lut(ds.pixel_array, ds) for ds in datasets])
    np.testing.assert_allclose(back, np.rint(phantom_set.physical()[:, 0]), atol=0)
    first = datasets[0]
    assert first.file_meta.TransferSyntaxUID == ExplicitVRLittleEndian
    assert first.SOPClassUID == CTImageStorage and first.RescaleType == "HU" and first.PixelRepresentation == 1
    assert list(first.ImageType)[:2] == ["DERIVED", "SECONDARY"]
    assert (first.PatientIdentityRemoved, first.BurnedInAnnotation, first.PatientName) == ("YES", "NO", "SYNTHETIC")
    assert first.DeidentificationMethod and before <= first.StudyDate <= after
    for ds, label in zip(datasets, phantom_set.labels):
        assert "SYNTHETIC" in ds.SeriesDescription and label in ds.SeriesDescription and label in ds.ImageComments
    assert len({ds.StudyInstanceUID for ds in datasets}) == 1 and len({ds.SeriesInstanceUID for ds in datasets}) == 1
    assert len({ds.SOPInstanceUID for ds in datasets}) == N
    again = pydicom.dcmread(write_images(phantom_set, tmp_path / "again", "dicom")[0])
    assert again.StudyInstanceUID != first.StudyInstanceUID and again.SeriesInstanceUID != first.SeriesInstanceUID
    assert again.PatientID != first.PatientID
    reread = read_images(tmp_path / "out", labels=tmp_path / "out" / "labels.csv", image_size=SIZE)
    assert list(reread.labels) == list(phantom_set.labels) and reread.label_name == "finding"
    np.testing.assert_allclose(reread.physical(), np.rint(phantom_set.physical()), atol=0.01)


def test_dicom_output_of_other_modalities_and_colour(tmp_path) -> None:
    mr = read_images(pydicom.examples.get_path("mr"), image_size=32)
    ds = pydicom.dcmread(write_images(mr, tmp_path / "mr", "dicom")[0])
    assert ds.SOPClassUID == SecondaryCaptureImageStorage and ds.ConversionType == "SYN" and ds.Modality == "MR"
    slope = float(ds.RescaleSlope)
    assert slope == pytest.approx((mr.mapping.high - mr.mapping.low) / 65535, rel=1e-9)
    assert np.abs(apply_modality_lut(ds.pixel_array, ds) - mr.physical()[0, 0]).max() <= slope / 2 + 1e-9
    us = read_images(pydicom.examples.get_path("rgb_color"), image_size=32)
    ds = pydicom.dcmread(write_images(us, tmp_path / "us", "dicom")[0])
    assert ds.PhotometricInterpretation == "RGB" and ds.BitsAllocated == 8 and ds.SamplesPerPixel == 3
    assert np.abs(apply_modality_lut(ds.pixel_array, ds) - us.physical()[0].transpose(1, 2, 0)).max() <= 0.5


def test_no_input_tag_value_reaches_any_output_file(phantom, phantom_set, tmp_path) -> None:
    """Every identifying string of the inputs (names, IDs, dates, times, UIDs), searched in every
    element of every output (sequences and file meta included) and in the raw bytes. Coded strings
    (CS, and RescaleType's defined terms such as HU), numbers (DS, IS) and standard UIDs (SOP
    classes, transfer syntaxes) are shared vocabulary, not patient data."""
    _, inputs = phantom
    string_vrs = {"AE", "AS", "DA", "DT", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}

    def strings(ds: Dataset) -> set[str]:
        found = set()
        for element in [*ds.file_meta.iterall(), *ds.iterall()]:
            if element.VR in string_vrs and element.value not in (None, "") and element.keyword != "RescaleType":
                values = element.value if isinstance(element.value, MultiValue) else [element.value]
                standard = element.VR == "UI" and UID(str(element.value)).name != str(element.value)
                found |= {str(value) for value in values if str(value) and not standard}
        return found

    identifying = set()
    for path in inputs:
        identifying |= strings(pydicom.dcmread(path))
    first = pydicom.dcmread(inputs[0])
    expected = {PATIENT["PatientName"], PATIENT["PatientID"], PATIENT["StudyDate"], first.StudyInstanceUID, first.SOPInstanceUID}
    assert expected <= identifying  # the search below is meaningful

    outputs = write_images(phantom_set, tmp_path / "out", "dicom")
    for path in outputs:
        assert strings(pydicom.dcmread(path)) & identifying == set()
        raw = path.read_bytes()
        assert not [value for value in identifying if value.encode() in raw]


def test_png_and_npz_outputs_carry_labels_and_values(phantom_set, tmp_path) -> None:
    paths = write_images(phantom_set, tmp_path / "png", "png")
    assert {path.parent.name for path in paths} == {LESION, NORMAL}
    assert all(path.parent.name == label for path, label in zip(paths, phantom_set.labels))
    reread = read_images(tmp_path / "png", image_size=SIZE)
    assert sorted(reread.labels) == sorted(phantom_set.labels)
    order = [paths.index(Path(source)) for source in reread.sources]
    np.testing.assert_allclose(reread.images, phantom_set.images[order], atol=1.01 / 255)
    with (tmp_path / "png" / "labels.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["file", "finding"]
    assert rows[1] == [paths[0].relative_to(tmp_path / "png").as_posix(), phantom_set.labels[0]]

    paths = write_images(phantom_set, tmp_path / "npz", "npz")
    with np.load(paths[0], allow_pickle=False) as data:
        assert data["images"].shape == (N, SIZE, SIZE) and data["images"].dtype == np.float32
        np.testing.assert_allclose(data["images"], phantom_set.physical()[:, 0])
        assert list(data["labels"]) == list(phantom_set.labels) and str(data["unit"]) == "HU"


def test_png_folder_names_are_made_safe_and_must_stay_distinct(tmp_path) -> None:
    mapping = IntensityMapping(0, 255, "pixel")
    images = ImageSet(np.zeros((2, 1, 4, 4)), ["../up", "a b"], mapping)
    paths = write_images(images, tmp_path / "out", "png")
    assert [path.parent.name for path in paths] == ["_._up", "a_b"]
    assert all(path.parent.parent == tmp_path / "out" for path in paths)
    with pytest.raises(InvalidArgumentError, match="would share the PNG folder 'a_b'"):
        write_images(ImageSet(np.zeros((2, 1, 4, 4)), ["a b", "a/b"], mapping), tmp_path / "clash", "png")


def test_writes_are_atomic_and_never_overwrite(phantom_set, tmp_path, monkeypatch) -> None:
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("x")
    with pytest.raises(InvalidArgumentError, match="not an empty directory"):
        write_images(phantom_set, tmp_path / "taken", "png")
    with pytest.raises(InvalidArgumentError, match="unknown image format 'tiff'"):
        write_images(phantom_set, tmp_path / "new", "tiff")
    (tmp_path / "empty").mkdir()
    assert len(write_images(phantom_set, tmp_path / "empty", "npz")) == N

    real_write = pydicom.dcmwrite
    written = []

    def fail_on_third(path, ds, **options):
        if len(written) == 2:
            raise OSError("disk full")
        written.append(path)
        real_write(path, ds, **options)

    monkeypatch.setattr(image_io.pydicom, "dcmwrite", fail_on_third)
    with pytest.raises(OSError, match="disk full"):
        write_images(phantom_set, tmp_path / "out", "dicom")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["empty", "taken"]


# --- pydicom-data (optional extra "dicom-testdata"): real CR, MR, ultrasound and compressed files ---------


def _pydicom_data_file(name: str, tmp_path: Path) -> Path:
    data_store = pytest.importorskip("data_store", reason="pydicom-data is not installed (extra dicom-testdata)")
    source = Path(data_store.__file__).parent / "data" / name
    folder = tmp_path / name.removesuffix(".dcm")
    folder.mkdir()
    shutil.copy(source, folder / name)
    return folder


def test_pydicom_data_cr_monochrome1_is_inverted(tmp_path):
    folder = _pydicom_data_file("RG1_UNCR.dcm", tmp_path)
    images = read_images(folder, image_size=32)
    raw = pydicom.dcmread(next(folder.iterdir())).pixel_array.astype(float)
    assert images.images.shape == (1, 1, 32, 32) and images.mapping.modality == "CR"
    # MONOCHROME1 stores bright as low: after the reader, bright regions must be high.
    small = np.asarray(Image.fromarray(raw).resize((32, 32)))
    inside = images.images[0, 0][small > 0]  # the padding added to square the image is left out
    assert np.corrcoef(inside, small[small > 0])[0, 1] < -0.5


def test_pydicom_data_ultrasound_rgb_and_mr(tmp_path):
    rgb = read_images(_pydicom_data_file("US1_UNCR.dcm", tmp_path), image_size=32)
    assert rgb.images.shape == (1, 3, 32, 32) and rgb.mapping.photometric == "RGB"
    mr = read_images(_pydicom_data_file("MR2_UNCR.dcm", tmp_path), image_size=64)
    assert mr.images.shape == (1, 1, 64, 64) and mr.mapping.modality == "MR"
    assert -1.0 <= mr.images.min() < mr.images.max() <= 1.0


def test_pydicom_data_lossless_jpeg2000_reads_like_the_uncompressed_file(tmp_path):
    """Pillow decodes JPEG 2000 for pydicom, so this transfer syntax needs no extra."""
    compressed = read_images(_pydicom_data_file("RG1_J2KR.dcm", tmp_path), image_size=32)
    plain = read_images(_pydicom_data_file("RG1_UNCR.dcm", tmp_path), image_size=32)
    np.testing.assert_allclose(compressed.images, plain.images, atol=1e-6)
