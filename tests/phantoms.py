"""Procedural CT phantoms for the image tests: known labels, realistic identifying DICOM tags.

``phantom_images`` draws a body ellipse of soft tissue with two lungs; a "lesion" image also holds
a bright disk inside the body. ``write_phantom_dicom`` writes them as one CT series the way a
scanner would (patient name and ID, dates, UIDs, rescale, positions), file names in random order,
plus a ``labels.csv``. Import with ``from phantoms import ...`` (tests/ is on sys.path under pytest).
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

LESION, NORMAL = "lesion", "normal"
AIR_HU, TISSUE_HU, LUNG_HU, LESION_HU = -1000.0, 40.0, -850.0, 300.0
#: Identifying values written into every phantom file; none may reach any synthetic output.
PATIENT = {
    "PatientName": "DOE^JANE^Q",
    "PatientID": "MRN-4471-2219",
    "PatientBirthDate": "19530412",
    "PatientSex": "F",
    "OtherPatientIDs": "NHS-943-476-5919",
    "PatientAddress": "12 Harbour Lane, Springfield",
    "InstitutionName": "St Elsewhere General Hospital",
    "InstitutionAddress": "1 Infirmary Road, Springfield",
    "ReferringPhysicianName": "HOUSE^GREGORY",
    "PerformingPhysicianName": "QUINN^MICHAELA",
    "OperatorsName": "TECH^ROBIN",
    "AccessionNumber": "ACC20190314-77",
    "StudyID": "STU-55123",
    "StationName": "CTSCAN-EAST-02",
    "DeviceSerialNumber": "SN-88412-X",
    "StudyDescription": "CT CHEST WITH CONTRAST",
    "StudyDate": "20190314",
    "SeriesDate": "20190314",
    "AcquisitionDate": "20190314",
    "ContentDate": "20190314",
    "StudyTime": "101517.123456",
    "SeriesTime": "101622.654321",
    "AcquisitionTime": "101623.111111",
    "ContentTime": "101624.222222",
    "Manufacturer": "ACME MEDICAL SYSTEMS",
    "ManufacturerModelName": "ACME-CT-9000",
    "SoftwareVersions": "ACME-SW-7.1.3",
}


def phantom_images(n: int, size: int, seed: int, lesion_fraction: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(HU images float32 (n, size, size), whole numbers in -1024..3071; labels ``"lesion"``/``"normal"``)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1) * 2 - 1  # coordinates in [-1, 1]
    images = np.empty((n, size, size), dtype=np.float32)
    labels = np.where(rng.random(n) < lesion_fraction, LESION, NORMAL).astype(object)
    for index in range(n):
        cx, cy = rng.uniform(-0.05, 0.05, 2)
        ax, ay = rng.uniform(0.75, 0.9), rng.uniform(0.55, 0.7)
        body = ((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1
        image = np.where(body, TISSUE_HU, AIR_HU) + rng.normal(0, 8, (size, size))
        for side in (-1, 1):
            lung = ((xx - cx - side * 0.38 * ax) / (0.28 * ax)) ** 2 + ((yy - cy) / (0.65 * ay)) ** 2 <= 1
            image[lung] = LUNG_HU + rng.normal(0, 15, int(lung.sum()))
        if labels[index] == LESION:
            lx, ly = cx + rng.uniform(-0.15, 0.15), cy + rng.uniform(0.2, 0.4) * ay
            radius = rng.uniform(0.12, 0.18)
            image[(xx - lx) ** 2 + (yy - ly) ** 2 <= radius**2] = LESION_HU
        images[index] = np.clip(np.rint(image), -1024, 3071)  # the range a 12-bit scanner stores
    return images, labels


def ct_dataset(stored: np.ndarray, *, slope: float = 1.0, intercept: float = -1024.0, **tags: object) -> Dataset:
    """A CT file dataset around ``stored`` pixels (uint16 or int16; 2-D, or 3-D for multi-frame).

    Carries :data:`PATIENT` and fresh UIDs; ``tags`` add or override attributes by keyword.
    """
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.FrameOfReferenceUID = generate_uid()
    ds.Modality = "CT"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    for keyword, value in PATIENT.items():
        setattr(ds, keyword, value)
    ds.SeriesDescription = "AXIAL 2.5MM"
    ds.SeriesNumber = 3
    ds.PixelSpacing = [0.703125, 0.703125]
    ds.SliceThickness = 2.5
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.RescaleSlope = slope
    ds.RescaleIntercept = intercept
    ds.RescaleType = "HU"
    ds.WindowCenter, ds.WindowWidth = 40, 400
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    # A scanner's own implementation UID, so that nothing in the file meta matches what synthgen writes.
    ds.file_meta.ImplementationClassUID = "1.2.840.113619.6.374"
    ds.file_meta.ImplementationVersionName = "ACME_CT_713"
    ds.file_meta.SourceApplicationEntityTitle = "CTSCAN_EAST"
    ds.set_pixel_data(stored, "MONOCHROME2", 16 if stored.dtype.itemsize == 2 else 8, generate_instance_uid=False)
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def write_phantom_dicom(
    directory: Path,
    n: int = 12,
    size: int = 32,
    seed: int = 0,
    *,
    lesion_fraction: float = 0.5,
    label_column: str = "finding",
    series_description: str = "AXIAL 2.5MM",
) -> list[Path]:
    """Write ``phantom_images(n, size, seed, lesion_fraction)`` as one CT series plus ``labels.csv``.

    Slice ``i`` sits at z = -50 + 2.5 i mm but carries InstanceNumber ``n - i`` (scanners often
    number from the top), and file names are random, so only position sorting restores the order.
    Returns the file paths in slice order: ``paths[i]`` holds image ``i``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    hu, labels = phantom_images(n, size, seed, lesion_fraction)
    rng = np.random.default_rng(seed + 1)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    paths = []
    for index, name in enumerate(rng.permutation(10_000)[:n]):
        stored = (hu[index] + 1024).astype(np.uint16)
        ds = ct_dataset(
            stored,
            StudyInstanceUID=study,
            SeriesInstanceUID=series,
            FrameOfReferenceUID=frame,
            SeriesDescription=series_description,
            ImagePositionPatient=[-180.0, -180.0, -50.0 + 2.5 * index],
            InstanceNumber=n - index,
        )
        paths.append(save(ds, directory / f"IM{name:04d}.dcm"))
    with (directory / "labels.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", label_column])
        writer.writerows((path.name, label) for path, label in zip(paths, labels))
    return paths
