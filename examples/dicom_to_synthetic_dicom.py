"""A folder of CT DICOM files in, de-identified synthetic CT DICOM files out.

To run anywhere without patient data, the script first writes a tiny CT series itself with
pydicom: procedural chest slices (a body, two lungs and, on "lesion" slices, a bright disk),
carrying the identifying tags a scanner writes (patient name and ID, birth date, institution,
physicians, UIDs), plus a ``labels.csv`` naming each slice's finding. Point ``--dicom`` at a
folder of your own (with ``--labels`` if you have them) to use real files instead.

``synthgen.read_images`` reads the series in slice order and in Hounsfield units,
``synthgen.ImageSynthesizer`` learns it (conditioned on the finding), and
``synthgen.write_images`` writes synthetic slices as DICOM built from an allow-list: nothing is
copied from an input file. The script then checks that claim on the bytes of every output file.

    python examples/dicom_to_synthetic_dicom.py --out dicom-demo
    python examples/dicom_to_synthetic_dicom.py --out dicom-demo --steps 3000 --slices 200

Writes ``source/`` (the generated input series, unless ``--dicom``), ``model.sgz`` and
``synthetic/`` (DICOM files and their ``labels.csv``) into ``--out``.
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

import synthgen
from synthgen.errors import SynthgenError

#: What a scanner writes about the patient and the site; none of it may reach a synthetic file.
IDENTIFYING = {
    "PatientName": "DOE^JANE",
    "PatientID": "MRN-4471-2219",
    "PatientBirthDate": "19530412",
    "PatientSex": "F",
    "InstitutionName": "St Elsewhere General Hospital",
    "ReferringPhysicianName": "HOUSE^GREGORY",
    "AccessionNumber": "ACC20190314-77",
    "StudyDate": "20190314",
    "StationName": "CTSCAN-EAST-02",
}
LABEL_COLUMN = "finding"


def phantom_slices(n: int, size: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """``n`` chest-like CT slices in HU (whole numbers, -1024..3071) and their findings."""
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1) * 2 - 1  # coordinates in [-1, 1]
    slices, findings = np.empty((n, size, size)), []
    for index in range(n):
        ax, ay = rng.uniform(0.75, 0.9), rng.uniform(0.55, 0.7)
        body = (xx / ax) ** 2 + (yy / ay) ** 2 <= 1
        image = np.where(body, 40.0, -1000.0) + rng.normal(0, 8, (size, size))  # soft tissue in air
        for side in (-1, 1):
            lung = ((xx - side * 0.38 * ax) / (0.28 * ax)) ** 2 + (yy / (0.65 * ay)) ** 2 <= 1
            image[lung] = -850.0 + rng.normal(0, 15, int(lung.sum()))
        finding = "lesion" if rng.random() < 0.5 else "normal"
        if finding == "lesion":
            lx, ly, radius = rng.uniform(-0.15, 0.15), rng.uniform(0.2, 0.4) * ay, rng.uniform(0.12, 0.18)
            image[(xx - lx) ** 2 + (yy - ly) ** 2 <= radius**2] = 300.0
        slices[index] = np.clip(np.rint(image), -1024, 3071)
        findings.append(finding)
    return slices, findings


def write_ct_series(folder: Path, n: int, size: int, seed: int) -> Path:
    """One CT series as a scanner would write it (stored value = HU + 1024), plus ``labels.csv``."""
    folder.mkdir(parents=True, exist_ok=False)
    slices, findings = phantom_slices(n, size, np.random.default_rng(seed))
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    with (folder / "labels.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", LABEL_COLUMN])
        for index, (hu, finding) in enumerate(zip(slices, findings, strict=True)):
            ds = Dataset()
            ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid()
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
            ds.Modality = "CT"
            for keyword, value in IDENTIFYING.items():
                setattr(ds, keyword, value)
            ds.ImagePositionPatient = [-180.0, -180.0, -50.0 + 2.5 * index]
            ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
            ds.PixelSpacing, ds.SliceThickness, ds.InstanceNumber = [0.7, 0.7], 2.5, index + 1
            ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = 1, -1024, "HU"
            ds.file_meta = FileMetaDataset()
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.set_pixel_data((hu + 1024).astype(np.uint16), "MONOCHROME2", 16, generate_instance_uid=False)
            ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            name = f"IM{index:04d}.dcm"
            ds.save_as(folder / name, enforce_file_format=True)
            writer.writerow([name, finding])
    return folder / "labels.csv"


def source_identifiers(folder: Path) -> set[bytes]:
    """The values of the identifying tags (and UIDs) in every DICOM file under ``folder``, as bytes."""
    values = set()
    for file in folder.rglob("*"):
        if not file.is_file():
            continue
        try:
            ds = pydicom.dcmread(file, stop_before_pixels=True)
        except InvalidDicomError:  # labels.csv, notes: not DICOM, skipped as the reader skips them
            continue
        for keyword in (*IDENTIFYING, "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
            value = str(ds.get(keyword, "") or "")
            if len(value) >= 4:  # shorter ones ("F", "") would match by chance
                values.add(value.encode())
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("dicom-to-synthetic-dicom"), help="output folder (created)")
    parser.add_argument("--steps", type=int, default=200,
                        help="training steps (the default, about 2 CPU-minutes, is a demo: expect blurry slices)")
    parser.add_argument("--seed", type=int, default=0, help="same seed, same CPU: the same model and images")
    parser.add_argument("--dicom", type=Path, help="a folder of your own DICOM files (default: write a phantom series)")
    parser.add_argument("--labels", type=Path, help="with --dicom: a CSV with 'file' and 'finding' columns")
    parser.add_argument("--slices", type=int, default=48, help="slices in the phantom series")
    parser.add_argument("--image-size", type=int, default=32,
                        help="side the slices are resized to (16..128, multiple of 8)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    if args.dicom is None:
        source = args.out / "source"
        labels = write_ct_series(source, args.slices, args.image_size, args.seed)
    else:
        source, labels = args.dicom, args.labels
    real = synthgen.read_images(source, labels=labels, label_column=LABEL_COLUMN if labels else None,
                                image_size=args.image_size)
    print(f"Read {len(real)} slices ({real.mapping.modality}, {real.mapping.unit} "
          f"{real.mapping.low:g}..{real.mapping.high:g}), classes {real.classes if any(real.classes) else 'none'}")

    model = synthgen.ImageSynthesizer(image_size=args.image_size, seed=args.seed, steps=args.steps).fit(real)
    model.save(args.out / "model.sgz")
    # As many slices of each finding as the source has.
    classes, counts = np.unique(real.labels, return_counts=True)
    samples = [model.sample(int(k), condition=label or None, seed=args.seed + i)
               for i, (label, k) in enumerate(zip(classes, counts, strict=True))]
    synthetic = synthgen.ImageSet(np.concatenate([s.images for s in samples]),
                                  np.concatenate([s.labels for s in samples]), real.mapping, real.label_name)
    files = synthgen.write_images(synthetic, args.out / "synthetic", "dicom")
    print(f"Wrote {len(files)} synthetic DICOM files to {args.out / 'synthetic'}")

    # De-identified means: no identifying value of any source file in any output byte. Values are
    # counted, never printed (they are patient data).
    identifying = source_identifiers(source)
    leaks = sum(value in file.read_bytes() for file in files for value in identifying)
    if leaks:
        raise SystemExit(f"{leaks} identifying value(s) of the source files found in the synthetic files")
    first = pydicom.dcmread(files[0])
    print(f"De-identified: none of the {len(identifying)} identifying values of the source files appears in any "
          f"output file (PatientName={first.PatientName}, PatientIdentityRemoved={first.PatientIdentityRemoved})")
    hu = first.pixel_array * float(first.RescaleSlope) + float(first.RescaleIntercept)
    print(f"{files[0].name}: {first.Rows}x{first.Columns}, {hu.min():.0f}..{hu.max():.0f} HU, "
          f"{first.SeriesDescription}")


if __name__ == "__main__":
    try:
        main()
    except SynthgenError as error:  # bad input or options: one line naming it, not a traceback
        raise SystemExit(f"error: {error}") from None
