"""The NIfTI reader plugin on small volumes written here with nibabel (16 x 16 x 8 voxels, a sphere).

Skipped as a whole when the plugin (``pip install -e plugins/synthgen-nifti``) is not installed.
"""
from __future__ import annotations

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.pixels import apply_modality_lut
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

import synthgen
from synthgen import registry
from synthgen.cli.main import main
from synthgen.images.common import CT_FULL_RANGE, DATA_PERCENTILES
from synthgen.images.reading import read_images
from synthgen.errors import InvalidArgumentError, InvalidDataError
from synthgen.synthesizers.images import ImageSynthesizer
from synthgen.models.image_gan import ImageGANConfig

nib = pytest.importorskip("nibabel", reason="nibabel is not installed (the synthgen-nifti plugin needs it)")
synthgen_nifti = pytest.importorskip("synthgen_nifti", reason="the synthgen-nifti plugin is not installed")
NiftiReader = synthgen_nifti.NiftiReader

X, Y, Z = 16, 16, 8
AIR, SPHERE, MARKER = -1000.0, 300.0, 1000.0


def volume(sphere: bool = True) -> np.ndarray:
    """HU voxels indexed (i, j, k) towards Right, Anterior, Superior (identity affine).

    A sphere in the middle; a marker block near the right side, anterior of centre, in the top three slices;
    voxel (0, 0, k) (left, posterior) holds -500 + 50 k, so each slice carries its own index.
    """
    i, j, k = np.meshgrid(np.arange(X), np.arange(Y), np.arange(Z), indexing="ij")
    vol = np.full((X, Y, Z), AIR, dtype=np.float32)
    if sphere:
        vol[(i - 7.5) ** 2 + (j - 7.5) ** 2 + ((k - 3.5) * 2) ** 2 <= 25] = SPHERE
    vol[12:15, 10:12, Z - 3 :] = MARKER  # not symmetric in x and y, so a transposed slice shows
    vol[0, 0, :] = -500 + 50 * np.arange(Z)
    return vol


def save(data: np.ndarray, affine: np.ndarray, path: Path, *, modality: str | None = None) -> Path:
    """``data`` as int16 NIfTI at ``path`` (``.nii`` or ``.nii.gz``), with a BIDS sidecar if ``modality``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(np.asarray(data).astype(np.int16), affine)
    image.header.set_data_dtype(np.int16)
    nib.save(image, path)
    if modality is not None:
        name = path.name.removesuffix(".gz").removesuffix(".nii")
        path.with_name(name + ".json").write_text(json.dumps({"Modality": modality, "ConversionSoftware": "test"}))
    return path


def dicom_series(vol: np.ndarray, folder: Path) -> Path:
    """The identity-affine ``vol`` as a CT DICOM series, as a scanner would write it (LPS geometry).

    Pixel (r, c) of slice k lies at LPS ImagePositionPatient + c·(1,0,0) + r·(0,1,0), i.e. at RAS
    (X-1-c, Y-1-r, k). Files are named in shuffled order and numbered from the top, so only the
    slice positions give the order.
    """
    folder.mkdir(parents=True)
    series, study = generate_uid(), generate_uid()
    for k, name in zip(range(Z), np.random.default_rng(0).permutation(Z)):
        pixels = np.empty((Y, X), dtype=np.int16)
        for r in range(Y):
            for c in range(X):
                pixels[r, c] = vol[X - 1 - c, Y - 1 - r, k]
        ds = Dataset()
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.Modality = study, series, "CT"
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [-(X - 1), -(Y - 1), float(k)]
        ds.InstanceNumber = Z - k
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, 0, "HU"
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = CTImageStorage, ds.SOPInstanceUID
        ds.set_pixel_data(pixels, "MONOCHROME2", 16, generate_instance_uid=False)
        ds.save_as(folder / f"IM{name:02d}.dcm", enforce_file_format=True)
    return folder


EYE = np.eye(4)


# --- registration ------------------------------------------------------------------------------


def test_registered_as_an_image_reader_and_recognises_nifti_only(tmp_path) -> None:
    assert registry.image_readers()["nifti"] is NiftiReader
    single = save(volume(), EYE, tmp_path / "one" / "ct.nii.gz")
    plain = save(volume(), EYE, tmp_path / "two" / "deep" / "ct.NII")
    (tmp_path / "three").mkdir()
    (tmp_path / "three" / "ct.nii.txt").write_text("not a volume")
    save(volume(), EYE, tmp_path / "three" / ".hidden" / "ct.nii")
    assert NiftiReader.can_read(single) and NiftiReader.can_read(single.parent)
    assert NiftiReader.can_read(plain) and NiftiReader.can_read(tmp_path / "two")
    assert not NiftiReader.can_read(tmp_path / "three")  # wrong suffix; hidden folders are skipped
    with pytest.raises(InvalidDataError, match="no installed image reader recognises it"):
        read_images(tmp_path / "three")
    with pytest.raises(InvalidDataError, match=r"no \.nii or \.nii\.gz files in it"):
        NiftiReader().read(tmp_path / "three")
    # beside PNGs, the choice is the user's, as for DICOM
    Image.fromarray(np.zeros((8, 8), dtype=np.uint8)).save(tmp_path / "one" / "x.png")
    with pytest.raises(InvalidDataError, match=r"several image readers \(folder, nifti\)"):
        read_images(tmp_path / "one")
    assert len(read_images(tmp_path / "one", reader="nifti", image_size=16)) == Z


# --- slicing and orientation -------------------------------------------------------------------


def test_slices_are_the_dicom_series_of_the_same_scan(tmp_path) -> None:
    vol = volume()
    nifti = read_images(save(vol, EYE, tmp_path / "ct.nii.gz", modality="CT"), image_size=16)
    dicom = read_images(dicom_series(vol, tmp_path / "dicom"), image_size=16)
    assert nifti.mapping == dicom.mapping and nifti.mapping.unit == "HU" and nifti.mapping.modality == "CT"
    np.testing.assert_array_equal(nifti.images, dicom.images)
    # what that means: inferior slice first, anterior at the top, the patient's right on the left
    hu = nifti.physical()[:, 0]
    np.testing.assert_allclose(hu[:, -1, -1], -500 + 50 * np.arange(Z), atol=0.01)  # left-posterior voxel
    np.testing.assert_allclose(hu[-3:, 4:6, 1:4], MARKER, atol=0.01)  # rows Y-1-j, columns X-1-i; top slices only
    np.testing.assert_allclose(hu[:-3, 4:6, 1:4], AIR, atol=0.01)
    assert (hu[-3:] == hu[-3:].max()).sum() == 3 * 2 * 3
    assert nifti.sources == [f"{tmp_path / 'ct.nii.gz'}[{k}]" for k in range(Z)]


@pytest.mark.parametrize(
    "layout",
    ["x flipped", "y and z flipped", "sagittal storage", "gzip off, 2 mm voxels"],
)
def test_storage_order_and_affine_do_not_change_the_slices(tmp_path, layout) -> None:
    vol = volume()
    reference = read_images(save(vol, EYE, tmp_path / "ras.nii.gz"), image_size=16).images
    if layout == "x flipped":  # voxel i' is at x = X-1-i'
        data, affine = vol[::-1], np.array([[-1, 0, 0, X - 1], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])
    elif layout == "y and z flipped":
        data, affine = vol[:, ::-1, ::-1], np.array([[1, 0, 0, 0], [0, -1, 0, Y - 1], [0, 0, -1, Z - 1], [0, 0, 0, 1.0]])
    elif layout == "sagittal storage":  # stored axes (k, i, j): voxel (a, b, c) is at RAS (b, c, a)
        data, affine = vol.transpose(2, 0, 1), np.array([[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1.0]])
    else:
        data, affine = vol, np.diag([2.0, 2.0, 2.0, 1.0])
    path = tmp_path / ("other.nii" if layout.startswith("gzip off") else "other.nii.gz")
    if not layout.startswith("gzip"):  # the file really stores the voxels in another order
        assert data.shape != vol.shape or not np.array_equal(data, vol)
    np.testing.assert_array_equal(read_images(save(data, affine, path), image_size=16).images, reference)


def test_resized_non_square_slices_and_two_d_files(tmp_path) -> None:
    wide = np.full((24, 12, 3), 100.0, dtype=np.float32)  # 24 columns (x) by 12 rows (y) per slice
    images = read_images(save(wide, EYE, tmp_path / "wide.nii"), image_size=8, window="0,400")
    assert images.images.shape == (3, 1, 8, 8)
    # centre-padded to a square with the slice's own minimum (here the constant itself), like every reader
    np.testing.assert_allclose(images.physical(), 100.0, atol=0.01)
    flat = read_images(save(volume()[:, :, 2], EYE, tmp_path / "flat.nii"), image_size=16, window="0,400")
    whole = read_images(save(volume(), EYE, tmp_path / "whole.nii"), image_size=16, window="0,400")
    assert len(flat) == 1
    np.testing.assert_array_equal(flat.images[0], whole.images[2])  # a 2-D file is one axial slice
    with_time = read_images(save(volume()[..., None], EYE, tmp_path / "t1.nii"), image_size=16, window="0,400")
    np.testing.assert_array_equal(with_time.images, whole.images)  # 4-D with one time point is a volume


# --- intensities -------------------------------------------------------------------------------


def test_scl_slope_and_inter_give_the_physical_values(tmp_path) -> None:
    raw = np.random.default_rng(1).integers(0, 2000, (X, Y, Z)).astype(np.int16)
    path = save(raw, EYE, tmp_path / "scaled.nii")
    with path.open("r+b") as handle:  # scl_slope and scl_inter live at bytes 112 and 116 of a NIfTI-1 header
        handle.seek(112)
        handle.write(struct.pack("<ff", 2.0, -1024.0))
    stored = nib.load(path)
    assert (stored.dataobj.slope, stored.dataobj.inter) == (2.0, -1024.0)
    np.testing.assert_array_equal(np.asarray(stored.dataobj.get_unscaled()), raw)  # the file holds the raw values
    path.with_name("scaled.json").write_text(json.dumps({"Modality": "ct"}))
    images = read_images(path, image_size=16)
    assert (images.mapping.low, images.mapping.high, images.mapping.unit) == (*CT_FULL_RANGE, "HU")
    expected = (2.0 * raw - 1024.0)[::-1, ::-1].transpose(2, 1, 0)
    np.testing.assert_allclose(images.physical()[:, 0], expected, atol=0.01)


def test_windows_follow_the_dicom_reader(tmp_path) -> None:
    ct = save(volume(), EYE, tmp_path / "ct" / "a.nii.gz", modality="CT")
    mr = save(volume() + 1000, EYE, tmp_path / "mr" / "a.nii.gz", modality="MR")
    bare = save(volume() + 1000, EYE, tmp_path / "bare" / "a.nii.gz")
    windowed = read_images(ct, image_size=16, window="soft-tissue")  # (40, 400): -160..240 HU
    assert (windowed.mapping.low, windowed.mapping.high, windowed.mapping.unit) == (-160.0, 240.0, "HU")
    hu = read_images(ct, image_size=16).physical()
    np.testing.assert_allclose(windowed.physical(), np.clip(hu, -160, 240), atol=0.01)
    assert windowed.images.max() == 1.0 and windowed.images.min() == -1.0  # sphere and air clipped
    # a CT preset on a volume without a sidecar says it is CT
    assert read_images(bare, image_size=16, window="lung").mapping.modality == "CT"
    # an explicit window applies to any modality; a preset (HU) only to CT
    explicit = read_images(mr, image_size=16, window=(1500, 1000)).mapping
    assert (explicit.low, explicit.high, explicit.unit, explicit.modality) == (1000.0, 2000.0, "raw", "MR")
    with pytest.raises(InvalidArgumentError, match="'bone' is in HU and needs CT images; these are MR"):
        read_images(mr, image_size=16, window="bone")
    with pytest.raises(InvalidArgumentError, match="unknown window 'wide'"):
        read_images(ct, image_size=16, window="wide")
    # no window: the percentiles of all pixels, as for DICOM MR
    plain = read_images(bare, image_size=16).mapping
    low, high = np.percentile(volume() + 1000, DATA_PERCENTILES)
    assert (plain.low, plain.high, plain.unit, plain.modality) == pytest.approx((low, high, "raw", "OT"))


# --- labels ------------------------------------------------------------------------------------


def test_one_label_per_volume_from_a_labels_csv(tmp_path) -> None:
    save(volume(), EYE, tmp_path / "a.nii.gz")
    save(volume(sphere=False)[:, :, :4], EYE, tmp_path / "sub" / "b.nii")
    (tmp_path / "labels.csv").write_text("file,finding,site\na.nii.gz,lesion,x\nsub/b.nii,normal,y\nc.nii,normal,z\n")
    images = read_images(tmp_path, labels=tmp_path / "labels.csv", label_column="finding", image_size=16)
    assert list(images.labels) == ["lesion"] * Z + ["normal"] * 4 and images.label_name == "finding"
    assert images.sources[Z] == f"{tmp_path / 'sub' / 'b.nii'}[0]"
    unlabelled = read_images(tmp_path, image_size=16)
    assert set(unlabelled.labels) == {""} and unlabelled.label_name is None
    (tmp_path / "short.csv").write_text("file,finding\na.nii.gz,lesion\n")
    with pytest.raises(InvalidDataError, match=r"b\.nii' has no row in labels file"):
        read_images(tmp_path, labels=tmp_path / "short.csv", image_size=16)
    with pytest.raises(InvalidArgumentError, match="NIfTI volumes take their labels from a labels CSV"):
        read_images(tmp_path, label_tag="SeriesDescription", image_size=16)


# --- refusals ----------------------------------------------------------------------------------


def test_bad_volumes_are_refused_naming_the_file(tmp_path) -> None:
    def refused(path: Path, message: str) -> None:
        with pytest.raises(InvalidDataError, match=message) as caught:
            read_images(path, image_size=16)
        assert str(path.name) in str(caught.value)

    garbage = tmp_path / "garbage.nii"
    garbage.write_bytes(b"certainly not a NIfTI header" * 20)
    refused(garbage, "could not be read as NIfTI")
    whole = save(volume(), EYE, tmp_path / "whole.nii").read_bytes()
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(gzip.compress(whole)[:-200])
    refused(truncated, "could not be read as NIfTI")
    series = np.stack([volume()] * 3, axis=-1)
    refused(save(series, EYE, tmp_path / "fmri.nii.gz"), r"is 4-D \(16x16x8x3\): a time series")
    refused(save(np.zeros((X, 0, Z)), EYE, tmp_path / "empty.nii"), r"holds no voxels \(shape 16x0x8\)")
    holes = nib.Nifti1Image(np.where(volume() > 0, np.nan, volume()).astype(np.float32), EYE)
    nib.save(holes, tmp_path / "holes.nii")
    refused(tmp_path / "holes.nii", r"holds \d+ non-finite voxel value\(s\)")
    flat = nib.Nifti1Image(volume(), EYE)
    flat.set_sform(np.diag([0.0, 1.0, 1.0, 1.0]), code=2)
    flat.set_qform(None, code=0)
    nib.save(flat, tmp_path / "flat_affine.nii")
    refused(tmp_path / "flat_affine.nii", "cannot be oriented")


def test_sidecars_must_agree_and_parse(tmp_path) -> None:
    save(volume(), EYE, tmp_path / "mixed" / "a.nii.gz", modality="CT")
    save(volume(), EYE, tmp_path / "mixed" / "b.nii.gz", modality="MR")
    save(volume(), EYE, tmp_path / "mixed" / "c.nii.gz")
    with pytest.raises(InvalidDataError, match=r"mixes modalities .*\(CT: 1, MR: 1, OT: 1;"):
        read_images(tmp_path / "mixed", image_size=16)
    broken = save(volume(), EYE, tmp_path / "broken" / "a.nii.gz")
    broken.with_name("a.json").write_text("{not json")
    with pytest.raises(InvalidDataError, match=r"a\.json', the sidecar of .*a\.nii\.gz', could not be read as JSON"):
        read_images(broken, image_size=16)
    broken.with_name("a.json").write_text(json.dumps({"Modality": "CT\\0DROP TABLE"}))
    with pytest.raises(InvalidDataError, match="is not a DICOM modality code"):
        read_images(broken, image_size=16)


# --- end to end --------------------------------------------------------------------------------


@pytest.fixture
def labelled_volumes(tmp_path) -> Path:
    folder = tmp_path / "volumes"
    save(volume(), EYE, folder / "p1.nii.gz", modality="CT")
    save(volume(sphere=False), EYE, folder / "p2.nii.gz", modality="CT")
    (folder / "labels.csv").write_text("file,finding\np1.nii.gz,lesion\np2.nii.gz,normal\n")
    return folder


def test_read_images_then_a_short_fit_and_sample_in_hu(labelled_volumes) -> None:
    images = synthgen.read_images(labelled_volumes, labels=labelled_volumes / "labels.csv", image_size=16)
    assert len(images) == 2 * Z and images.classes == ["lesion", "normal"] and images.mapping.unit == "HU"
    config = ImageGANConfig(base_width=8, batch_size=8)
    model = ImageSynthesizer(seed=0, steps=3, config=config, progress=False).fit(images)
    assert model.classes_ == ["lesion", "normal"] and model.class_counts_ == [Z, Z]
    assert model.mapping_ == images.mapping and model.training_["images"] == 2 * Z
    fake = model.sample(5, condition="lesion", seed=1)
    assert fake.images.shape == (5, 1, 16, 16) and set(fake.labels) == {"lesion"}
    assert CT_FULL_RANGE[0] <= fake.physical().min() and fake.physical().max() <= CT_FULL_RANGE[1]


def test_cli_fits_on_a_nifti_folder_and_writes_ct_dicom(labelled_volumes, tmp_path) -> None:
    model = tmp_path / "ct.sgz"
    fitted = CliRunner().invoke(main, ["fit", str(labelled_volumes), "--labels", str(labelled_volumes / "labels.csv"),
                                       "-o", str(model), "--window", "soft-tissue", "--image-size", "16",
                                       "--steps", "2", "--batch-size", "8", "--seed", "0", "--quiet"])
    assert fitted.exit_code == 0, fitted.output
    out = tmp_path / "synthetic"
    sampled = CliRunner().invoke(main, ["sample", str(model), "-n", "3", "--condition", "finding=normal",
                                        "-o", str(out), "--format", "dicom", "--seed", "1", "--quiet"])
    assert sampled.exit_code == 0, sampled.output
    files = sorted(out.glob("*.dcm"))
    assert len(files) == 3
    for path in files:
        ds = pydicom.dcmread(path)
        hu = apply_modality_lut(ds.pixel_array, ds)
        assert ds.Modality == "CT" and ds.RescaleType == "HU" and -160 <= hu.min() and hu.max() <= 240
