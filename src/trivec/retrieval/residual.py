"""Residual ColBERT codes in the manner of ColBERTv2 / PLAID: a token vector is stored as the id of its
nearest centroid and, per dimension, `bits` bits that place its residual (vector − centroid) in one of
2^bits buckets.

Fitted once per index, on its first `FIT_SAMPLE` stored tokens (pooled, projected, float16: the rows staged
until then, `ColbertCodec.staging`):

* centroids: k-means (faiss, on a float32 copy of the sample), `centroid_count(n)` of them for n sample
  tokens — ColBERTv2's 2^⌊log2(16·√n)⌋, which it applies to the whole collection; here n is the sample, so the count also stays
  ≤ n / 16 (a centroid fitted on fewer tokens than that mostly remembers them) and ≤ `MAX_CENTROIDS`
  (the id is two bytes);
* cutoffs `[dim, 2^bits − 1]`: per dimension, the quantiles i / 2^bits of the sample's residuals;
* weights `[dim, 2^bits]`: per dimension, the mean residual of the sample's tokens in each bucket.

A stored row is `[id low byte, id high byte, residual codes…]` (uint8; dimension j's code at bits
`(j mod 8/bits)·bits` of byte `j·bits/8`, low bits first). Decoding is `centroid + weights[d, code]`,
renormalised to `norm`, the sample's mean token length: ColBERTv2 renormalises to unit length, the
length its vectors have; here the models' token vectors are unit and pooled ones keep their inputs'
length, so this is 1 for them, and a projected index keeps its sample's length. No per-row scale: MaxSim
multiplies the decoded rows as they are. Nearest centroids are found with a bfloat16 matmul (≈ 5× a float32
one on this CPU; a near tie may go to the second-nearest centroid, whose residual is then coded instead).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from trivec.compiled import kernel
from trivec.errors import InputError

RESIDUAL_BITS = {"residual1": 1, "residual2": 2}  # ColBERT dtype → bits per dimension
MAX_CENTROIDS = 65536  # ids are stored in two bytes
MIN_SAMPLE = 256  # fewer sample tokens cannot fit centroids and cutoffs
FIT_SAMPLE = 65536  # stored tokens a codebook waits for and fits on at most (`sample_rows`: a seeded choice)
NEAREST_SCORES = 1 << 22  # token × centroid scores computed at once by `nearest` (16 MB of float32)
ID_BYTES = 2
# sample rows whose norms a fit takes at a time; FIT_BLOCK / 128: columns whose statistics it takes at once
FIT_BLOCK = 8192
KMEANS_ITERATIONS = 10  # ColBERTv2 runs 4; here ≈ 20–30 s for 4,096 centroids on 65,536 tokens (2 cores)


def centroid_count(tokens: int) -> int:
    """Centroids fitted on `tokens` sample tokens: 2^⌊log2(min(16·√n, n / 16))⌋, at most `MAX_CENTROIDS`."""
    if tokens < MIN_SAMPLE:
        raise InputError(
            f"residual ColBERT codes need at least {MIN_SAMPLE} token vectors in the first documents written to fit "
            f"their centroids on, got {tokens}: add more documents at once"
        )
    target = min(16.0 * math.sqrt(tokens), tokens / 16.0)
    return min(MAX_CENTROIDS, 2 ** math.floor(math.log2(target)))


def check_bits(bits: object) -> int:
    if not isinstance(bits, int) or isinstance(bits, bool) or bits not in RESIDUAL_BITS.values():
        allowed = ", ".join(str(b) for b in RESIDUAL_BITS.values())
        raise InputError(f"residual codes take {allowed} bits per dimension, got {bits!r}")
    return bits


@dataclass
class ResidualCodes:
    """A fitted residual codebook: `centroids [k, dim]`, `cutoffs [dim, 2^bits − 1]`, `weights [dim, 2^bits]`
    (float32), the decoded length `norm` and `bits` per dimension."""

    centroids: np.ndarray
    cutoffs: np.ndarray
    weights: np.ndarray
    norm: float
    bits: int
    _half_norms: np.ndarray = field(init=False, repr=False)
    _coefficients: np.ndarray = field(init=False, repr=False)
    _shifted: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_bits(self.bits)
        self.centroids = np.ascontiguousarray(self.centroids, dtype=np.float32)
        self.cutoffs = np.ascontiguousarray(self.cutoffs, dtype=np.float32)
        self.weights = np.ascontiguousarray(self.weights, dtype=np.float32)
        levels = 1 << self.bits
        dim = self.dim
        if self.cutoffs.shape != (dim, levels - 1) or self.weights.shape != (dim, levels):
            raise InputError(f"residual codes of {dim} dimensions need [{dim}, {levels}] weights")
        if not 1 <= self.count <= MAX_CENTROIDS:
            raise InputError(f"residual codes need 1 to {MAX_CENTROIDS} centroids, got {self.count}")
        self._half_norms = 0.5 * np.einsum("kd,kd->k", self.centroids, self.centroids)
        self._coefficients = bit_coefficients(self.weights)
        self._shifted = self.centroids + self._coefficients[0]  # each centroid plus the weights of code 0

    @property
    def dim(self) -> int:
        return int(self.centroids.shape[1])

    @property
    def count(self) -> int:
        return int(self.centroids.shape[0])

    def code_width(self, dim: int) -> int:
        """Bytes of one stored row of `dim` dimensions: the centroid id and the packed residual codes."""
        return ID_BYTES + -(-dim * self.bits // 8)

    def nearest(self, rows: np.ndarray) -> np.ndarray:
        """The nearest centroid of each row (`nearest_centroids`)."""
        return nearest_centroids(rows, self.centroids, self._half_norms)

    def encode(self, rows: np.ndarray) -> np.ndarray:
        """`[n, code_width]` uint8 stored rows of float32 `rows [n, dim]`."""
        rows = np.asarray(rows, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.dim:
            raise InputError(f"residual codes take [tokens, {self.dim}] vectors, got {tuple(rows.shape)}")
        ids = self.nearest(rows)
        buckets = self.buckets(rows - self.centroids[ids])
        out = np.empty((rows.shape[0], self.code_width(self.dim)), dtype=np.uint8)
        out[:, :ID_BYTES] = ids.astype("<u2").view(np.uint8).reshape(-1, ID_BYTES)
        out[:, ID_BYTES:] = pack_codes(buckets, self.bits)
        return out

    def buckets(self, residuals: np.ndarray) -> np.ndarray:
        """Each residual's bucket per dimension (how many of the dimension's cutoffs it exceeds), uint8."""
        return (residuals[:, :, None] > self.cutoffs[None, :, :]).sum(axis=2, dtype=np.uint8)

    def decode(self, codes: np.ndarray, rows: np.ndarray | None = None, dim: int | None = None) -> np.ndarray:
        """float32 vectors `[len(rows), dim]` of stored rows (`rows`: those of `codes`, in that order; all by
        default), decoded by one compiled loop reading the stored bytes in place."""
        packed = np.asarray(codes)
        if packed.dtype != np.uint8 or not packed.flags.c_contiguous:
            packed = np.ascontiguousarray(packed, dtype=np.uint8)
        picked = np.arange(packed.shape[0]) if rows is None else np.asarray(rows, dtype=np.int64)
        out = np.empty((picked.shape[0], self.dim if dim is None else min(dim, self.dim)), np.float32)
        book = self._shifted, self._coefficients
        _decode_residual(packed, picked, *book, self.bits, np.float32(self.norm), out)
        return out

    def to_array(self) -> np.ndarray:
        """Everything decoding and encoding need, as one float32 array (what the index stores)."""
        return np.concatenate(
            [self.centroids.ravel(), self.cutoffs.ravel(), self.weights.ravel(), [np.float32(self.norm)]]
        ).astype(np.float32)

    @classmethod
    def from_array(cls, values: np.ndarray, count: int, dim: int, bits: int) -> ResidualCodes:
        """The codebook `to_array` stored (`count` centroids of `dim` dimensions, `bits` per dimension)."""
        levels = 1 << check_bits(bits)
        sizes = [count * dim, dim * (levels - 1), dim * levels, 1]
        if values.shape != (sum(sizes),):
            raise InputError(f"a residual codebook of {count} × {dim}, {bits} bits, has {sum(sizes)} numbers")
        parts = np.split(np.asarray(values, dtype=np.float32), np.cumsum(sizes)[:-1])
        return cls(
            parts[0].reshape(count, dim),
            parts[1].reshape(dim, levels - 1),
            parts[2].reshape(dim, levels),
            float(parts[3][0]),
            bits,
        )


def pack_codes(buckets: np.ndarray, bits: int) -> np.ndarray:
    """`[n, dim]` bucket numbers < 2^bits → `[n, ⌈dim·bits/8⌉]` bytes, low bits first."""
    per = 8 // bits
    n, dim = buckets.shape
    padded = np.zeros((n, -(-dim // per) * per), dtype=np.uint8)
    padded[:, :dim] = buckets
    shifts = (np.arange(per, dtype=np.uint8) * bits).astype(np.uint8)
    grouped = padded.reshape(n, padded.shape[1] // per, per) << shifts
    return np.bitwise_or.reduce(grouped, axis=2).astype(np.uint8)


def nearest_centroids(rows: np.ndarray, centroids: np.ndarray, half_norms: np.ndarray) -> np.ndarray:
    """The nearest of `centroids` to each row (Euclidean: the largest `x·c − |c|²/2`; `half_norms`: the
    `|c|²/2`), by a bfloat16 matmul, `NEAREST_SCORES` scores at a time."""
    import torch

    if rows.shape[0] == 0:
        return np.zeros(0, dtype=np.int64)
    right = torch.from_numpy(np.ascontiguousarray(centroids, dtype=np.float32)).to(torch.bfloat16)
    half = torch.from_numpy(np.ascontiguousarray(half_norms, dtype=np.float32))
    out = np.empty(rows.shape[0], dtype=np.int64)
    step = max(1, NEAREST_SCORES // centroids.shape[0])  # rows at a time: ≈ 16 MB of scores, not n × count
    for start in range(0, rows.shape[0], step):
        part = np.ascontiguousarray(rows[start : start + step], dtype=np.float32)
        scores = (torch.from_numpy(part).to(torch.bfloat16) @ right.T).float()
        out[start : start + step] = scores.sub_(half).argmax(dim=1).numpy()
    return out


def sample_rows(total: int, seed: int = 0) -> np.ndarray:
    """Which of `total` token vectors a fit takes, ascending: all of them, or a seeded `FIT_SAMPLE`."""
    if total <= FIT_SAMPLE:
        return np.arange(total)
    return np.sort(np.random.default_rng(seed).choice(total, FIT_SAMPLE, replace=False))


def fit_residual(
    samples: list[np.ndarray], bits: int, count: int | None = None, seed: int = 0
) -> ResidualCodes:
    """A codebook fitted on sampled token vectors as they are stored (`count`: centroids, default
    `centroid_count` of the sample). Deterministic for a given sample and seed. The sample is held as
    float16 — the values the codes are computed from (`ColbertCodec.code`) —, at most `FIT_SAMPLE` rows
    chosen across `samples` without concatenating them; the statistics are taken a block at a time."""
    check_bits(bits)
    given = [s for s in samples if s.shape[0]]
    starts = np.cumsum([0, *(s.shape[0] for s in given)])
    pick = sample_rows(int(starts[-1]), seed)
    dim = given[0].shape[1] if given else 1
    if len(given) == 1 and given[0].dtype == np.float16 and pick.shape[0] == given[0].shape[0]:
        rows = given[0]  # the sample as it came (an index's staged rows, read for the fit): no copy
    else:
        rows = np.empty((pick.shape[0], dim), dtype=np.float16)
        bounds = np.searchsorted(pick, starts)
        for matrix, start, lo, hi in zip(given, starts, bounds, bounds[1:], strict=False):
            rows[lo:hi] = matrix[pick[lo:hi] - start]
    default = centroid_count(rows.shape[0])  # raises below MIN_SAMPLE, naming the problem
    k = default if count is None else count
    if not 1 <= k <= min(rows.shape[0], MAX_CENTROIDS):
        raise InputError(f"residual codes need 1 to {min(rows.shape[0], MAX_CENTROIDS)} centroids, got {k}")
    centroids = _kmeans(rows, k, seed)
    ids = nearest_centroids(rows, centroids, 0.5 * np.einsum("kd,kd->k", centroids, centroids))
    blocks = range(0, rows.shape[0], FIT_BLOCK)
    lengths = [np.linalg.norm(np.asarray(rows[i : i + FIT_BLOCK], np.float32), axis=1) for i in blocks]
    norm = float(np.mean(np.concatenate(lengths)))
    levels = 1 << bits
    cutoffs = np.empty((dim, levels - 1), dtype=np.float32)
    weights = np.empty((dim, levels), dtype=np.float32)
    width = max(1, FIT_BLOCK // 128)  # columns at a time: each one's quantiles and bucket means stand alone
    for c in range(0, dim, width):
        block = np.asarray(rows[:, c : c + width], dtype=np.float32) - centroids[ids, c : c + width]
        cutoffs[c : c + width] = np.quantile(block, np.arange(1, levels) / levels, axis=0).T
        buckets = (block[:, :, None] > cutoffs[None, c : c + width, :]).sum(axis=2, dtype=np.uint8)
        weights[c : c + width] = _bucket_means(block, buckets, levels)
    return ResidualCodes(centroids, cutoffs, weights, norm, bits)


def _kmeans(rows: np.ndarray, k: int, seed: int) -> np.ndarray:
    """`[k, dim]` float32 centroids of the float16 sample by faiss's k-means (`KMEANS_ITERATIONS`, `seed`), on
    a float32 copy of it (100 MB at 65,536 × 384). A Lloyd's k-means of trivec's own over the float16 rows
    a block at a time (bfloat16 or float32 assignments) needed no copy and ran 2–3× faster, but its codebooks
    lost 0.3 nDCG@10 point more in `colbert` mode on seven sets than faiss's (docs/scale.md)."""
    import faiss

    kmeans = faiss.Kmeans(rows.shape[1], k, niter=KMEANS_ITERATIONS, seed=seed, verbose=False)
    kmeans.cp.min_points_per_centroid = 1  # small samples are the caller's choice: no warning
    kmeans.train(np.ascontiguousarray(rows, dtype=np.float32))
    return np.asarray(kmeans.centroids, dtype=np.float32)


def _bucket_means(residuals: np.ndarray, buckets: np.ndarray, levels: int) -> np.ndarray:
    """`[dim, levels]`: per dimension the mean residual in each bucket (an empty bucket: the mean of the
    quantile range it stands for, i.e. the middle quantile)."""
    weights = np.empty((residuals.shape[1], levels), dtype=np.float32)
    for b in range(levels):
        inside = buckets == b
        counts = inside.sum(axis=0)
        sums = np.where(inside, residuals, 0.0).sum(axis=0)
        middle = np.quantile(residuals, (b + 0.5) / levels, axis=0)
        weights[:, b] = np.where(counts > 0, sums / np.maximum(counts, 1), middle)
    return weights


def bit_coefficients(weights: np.ndarray) -> np.ndarray:
    """`[4, dim]` float32 `(w0, w1 − w0, w2 − w0, w3 − w2 − w1 + w0)`: a bucket's weight as a polynomial in its
    code's bits (`w0 + b0·c1 + b1·(c2 + b0·c3)`, code = b0 + 2·b1; one bit: the first two), which the decode
    evaluates without a gather."""
    levels = weights.shape[1]
    out = np.zeros((4, weights.shape[0]), dtype=np.float32)
    out[0] = weights[:, 0]
    out[1] = weights[:, 1] - weights[:, 0]
    if levels == 4:
        out[2] = weights[:, 2] - weights[:, 0]
        out[3] = weights[:, 3] - weights[:, 2] - weights[:, 1] + weights[:, 0]
    return out


@kernel(fastmath=True)  # the length's sum reassociated (vectorised); the same bytes decode alike
def _decode_residual(
    packed: np.ndarray,
    rows: np.ndarray,
    shifted: np.ndarray,
    coefficients: np.ndarray,
    bits: int,
    norm: np.float32,
    out: np.ndarray,
) -> None:  # pragma: no cover
    """`out[r]`: row `rows[r]` of `packed` decoded — its centroid plus each dimension's bucket weight, as
    `shifted` (the centroids plus `w0`) plus the bits' terms (`bit_coefficients`) — renormalised to `norm`
    (as many dimensions as `out` has columns; a zero vector stays zero). Two passes per row, each a loop
    LLVM vectorises: the bits unpacked to floats, then the sums (one fused loop over bytes: ≈ 1.7× slower)."""
    columns = out.shape[1]
    c1, c2, c3 = coefficients[1], coefficients[2], coefficients[3]
    per = 8 // bits
    low = np.zeros(per * (columns // per + 1), dtype=np.float32)  # each dimension's code bits
    high = np.zeros_like(low)
    for r in range(rows.shape[0]):
        row = packed[rows[r]]
        centre = shifted[np.int64(row[0]) | (np.int64(row[1]) << 8)]
        target = out[r]
        for b in range(-(-columns // per)):
            byte = row[2 + b]
            if bits == 1:
                for k in range(8):
                    low[8 * b + k] = np.float32((byte >> k) & 1)
            else:
                for k in range(4):
                    low[4 * b + k] = np.float32((byte >> (2 * k)) & 1)
                    high[4 * b + k] = np.float32((byte >> (2 * k + 1)) & 1)
        total = np.float32(0.0)
        for d in range(columns):
            value = centre[d] + low[d] * c1[d] + high[d] * (c2[d] + low[d] * c3[d])
            target[d] = value
            total += value * value
        if total > 0:
            scale = norm / np.sqrt(total)
            for d in range(columns):
                target[d] *= scale
