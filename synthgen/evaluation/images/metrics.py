"""Feature-space measures: Fréchet distance, KID, precision/recall/density/coverage, nearest neighbours."""
from __future__ import annotations

import numpy as np
import torch
from scipy import linalg

from synthgen.errors import InvalidArgumentError

K = 5  # neighbours of the k-NN manifolds (Kynkäänniemi et al. and Naeem et al. both use 5)
_KID_SUBSETS, _KID_SUBSET_SIZE = 100, 1000
CHUNK = 512


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (rows are samples).

    tr((Σa Σb)^½) is computed as tr((Σa^½ Σb Σa^½)^½), a symmetric positive semi-definite
    root: exact, and free of the complex round-off that ``scipy.linalg.sqrtm(Σa @ Σb)`` gives
    when the covariances are singular (fewer images than features).
    """
    if len(a) < 2 or len(b) < 2:
        raise InvalidArgumentError(f"the Fréchet distance needs at least 2 samples per set, got {len(a)} and {len(b)}")
    sigma_a, sigma_b = np.cov(a, rowvar=False, ddof=1), np.cov(b, rowvar=False, ddof=1)
    values, vectors = linalg.eigh(sigma_a)
    root = (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T
    middle = root @ sigma_b @ root
    trace_root = np.sqrt(np.clip(linalg.eigvalsh((middle + middle.T) / 2), 0, None)).sum()
    difference = a.mean(axis=0) - b.mean(axis=0)
    return float(max(difference @ difference + np.trace(sigma_a) + np.trace(sigma_b) - 2 * trace_root, 0.0))


def kernel_inception_distance(
    a: np.ndarray, b: np.ndarray, *, rng: np.random.Generator, subsets: int = _KID_SUBSETS, subset_size: int = _KID_SUBSET_SIZE
) -> tuple[float, float]:
    """Unbiased MMD² with the kernel (x·y / d + 1)³ (Bińkowski et al. 2018): mean and std over random subsets.

    Subsets hold at most half of each set, so that they differ and their spread means something.
    """
    m = min(subset_size, len(a) // 2, len(b) // 2)
    if m < 2:
        raise InvalidArgumentError(f"KID needs at least 4 samples per set, got {len(a)} and {len(b)}")
    d = a.shape[1]
    values = np.empty(subsets)
    for s in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        k_xx, k_yy, k_xy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        values[s] = within - 2 * k_xy.mean()
    return float(values.mean()), float(values.std())


def prdc(real: np.ndarray, fake: np.ndarray, k: int = K) -> dict[str, float]:
    """Precision and recall (Kynkäänniemi et al. 2019), density and coverage (Naeem et al. 2020).

    Each sample's ball reaches its k-th nearest neighbour in its own set. Precision: share of
    fake samples inside some real ball; recall: share of real samples inside some fake ball;
    density: fake samples per real ball they fall in, over k; coverage: share of real balls
    holding a fake sample.
    """
    if len(real) <= k or len(fake) <= k:
        raise InvalidArgumentError(f"precision/recall with k={k} need more than {k} samples per set, got {len(real)} and {len(fake)}")
    real_t = torch.from_numpy(real).double()
    return prdc_given_radius(real_t, kth_distance(real_t, k), torch.from_numpy(fake).double(), k)


def prdc_given_radius(real_t: torch.Tensor, real_radius: torch.Tensor, fake_t: torch.Tensor, k: int) -> dict[str, float]:
    """:func:`prdc` with the real balls' radii given, so that several fake sets share them."""
    fake_radius = kth_distance(fake_t, k)
    in_real_ball = torch.zeros(len(fake_t), dtype=torch.bool)
    in_fake_ball = torch.zeros(len(real_t), dtype=torch.bool)
    covered = torch.zeros(len(real_t), dtype=torch.bool)
    density = 0.0
    for start in range(0, len(fake_t), CHUNK):
        rows = slice(start, start + CHUNK)
        distance = torch.cdist(fake_t[rows], real_t)  # (fake chunk, real)
        inside = distance <= real_radius[None, :]
        in_real_ball[rows] = inside.any(dim=1)
        density += float(inside.sum())
        covered |= inside.any(dim=0)
        in_fake_ball |= (distance <= fake_radius[rows, None]).any(dim=0)
    return {
        "precision": float(in_real_ball.double().mean()),
        "recall": float(in_fake_ball.double().mean()),
        "density": density / (k * len(fake_t)),
        "coverage": float(covered.double().mean()),
    }


def kth_distance(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row to its k-th nearest other row (the row itself is the 0th)."""
    return torch.cat([
        torch.cdist(x[start : start + CHUNK], x).topk(k + 1, dim=1, largest=False).values[:, -1]
        for start in range(0, len(x), CHUNK)
    ])


def nearest(queries: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance from each query row to its nearest reference row, and that row's position.

    Candidates come from the fast matrix-product distance; the winner's distance is then
    recomputed directly, so an exact copy measures 0 rather than float32 round-off.
    """
    queries_t = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)).flatten(1)
    reference_t = torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float32)).flatten(1)
    index = torch.cat([
        torch.cdist(queries_t[start : start + CHUNK], reference_t, compute_mode="use_mm_for_euclid_dist").argmin(dim=1)
        for start in range(0, len(queries_t), CHUNK)
    ])
    distance = (queries_t.double() - reference_t[index].double()).norm(dim=1)
    return distance.numpy(), index.numpy()
