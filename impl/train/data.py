"""Data sets for `vaespec train`: scikit-learn's bundled 8×8 digits, or a user's .npy/.npz.

Every source becomes a float32 matrix `[examples, features]` (images are flattened and their
shape kept for the plots), split once into train and held-out parts by a seeded permutation.
Files are read with `allow_pickle=False`: vaespec never loads pickles. Bad data is refused
with a `DataError` naming the file and what is wrong: unreadable, not numeric, the wrong rank,
too few examples, NaN or Inf (with the first bad index), or values outside [0, 1] for the
Bernoulli likelihood.
"""

from __future__ import annotations

import os
import zipfile
import zlib
from dataclasses import dataclass
from typing import IO

import numpy as np

from vaespec.spec.errors import ConfigError, DomainError, ShapeError

DIGITS = "digits"
# .npz members tried in order for the data and for the optional labels.
DATA_KEYS = ("x", "data", "X", "images", "arr_0")
LABEL_KEYS = ("y", "labels", "target", "targets")


class DataError(ConfigError):
    """The data set cannot be used: the message names the source and the problem."""


@dataclass(frozen=True)
class Dataset:
    """A data set split for training.

    **Attributes** `name`; `train`, `test`: float32 `[n, features]`; `train_labels`, `test_labels`:
    int arrays or None; `image_shape`: `(height, width)` when the examples are images, else None.
    """

    name: str
    train: np.ndarray
    test: np.ndarray
    train_labels: np.ndarray | None
    test_labels: np.ndarray | None
    image_shape: tuple[int, int] | None

    @property
    def features(self) -> int:
        return int(self.train.shape[1])


def _digits():
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise DataError("data: 'digits' needs scikit-learn (pip install 'vaespec[train]')") from error
    digits = load_digits()
    return digits.images.astype(np.float64) / 16.0, digits.target.astype(np.int64)  # pixel values 0..16 -> [0, 1]


MAX_DATA_BYTES = 8 << 30  # one array; far above any data set this command trains on


def _npy_array(stream: IO[bytes], size: int, source: str) -> np.ndarray:
    """One .npy array from `stream` of `size` bytes, after checking that its header's shape × dtype is what
    the stream holds (a header may declare 10¹² rows) and that it needs no unpickling."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(stream)
        header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = header(stream)
    except DataError:
        raise
    except Exception as error:  # noqa: BLE001  (numpy's header parser raises ValueError, tokenize errors, …)
        raise DataError(f"data: cannot read {source}: it has no valid .npy header ({type(error).__name__}: "
                        f"{str(error)[:200]})") from None
    if dtype.hasobject:
        raise DataError(f"data: {source} holds Python objects ({dtype}), which need unpickling; vaespec never "
                        "unpickles: save a numeric array with numpy.save / numpy.savez")
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    held = size - stream.tell()
    if need != held or need > MAX_DATA_BYTES:
        raise DataError(f"data: {source}'s header declares shape {shape} of {dtype} ({need} bytes) but it holds "
                        f"{held} bytes" + (f" (the limit is {MAX_DATA_BYTES})" if need > MAX_DATA_BYTES else "")
                        + "; the file is truncated or corrupt")
    data = stream.read(need)
    if len(data) != need:
        raise DataError(f"data: {source} ended after {len(data)} of {need} bytes: truncated")
    if stream.read(1):  # (also what makes a .npz member check its CRC: zipfile does so at the end of the stream)
        raise DataError(f"data: {source} holds more than its header's {need} bytes: corrupt")
    return np.frombuffer(data, dtype=dtype).reshape(shape, order="F" if fortran else "C")


def _read_file(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    from vaespec.spec.files import open_regular

    if not os.path.lexists(path):
        raise DataError(f"data: {path!r} does not exist (expected 'digits' or a .npy/.npz file)")
    try:
        with open_regular(path, DataError, "data") as handle:  # a FIFO or device is refused, never waited on
            size = os.fstat(handle.fileno()).st_size
            if not path.endswith(".npz"):
                return _npy_array(handle, size, repr(path)), None
            with zipfile.ZipFile(handle) as archive:
                names = [n.removesuffix(".npy") for n in archive.namelist()]
                key = next((k for k in DATA_KEYS if k in names), names[0] if len(names) == 1 else None)
                if key is None:
                    raise DataError(f"data: {path!r} holds arrays {names[:10]}; expected one of {list(DATA_KEYS)} "
                                    "(or a single array)")
                label_key = next((k for k in LABEL_KEYS if k in names), None)

                def member(name):
                    info = archive.getinfo(name + ".npy" if name + ".npy" in archive.namelist() else name)
                    with archive.open(info) as stream:
                        return _npy_array(stream, info.file_size, f"{path!r}[{name!r}]")
                return member(key), (member(label_key) if label_key else None)
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as error:
        raise DataError(f"data: cannot read {path!r} as a numeric .npy/.npz file ({type(error).__name__}: "
                        f"{str(error)[:200]})") from None


def _as_matrix(source: str, raw: object, labels: object
               ) -> tuple[np.ndarray, np.ndarray | None, tuple[int, ...] | None]:
    array = np.asarray(raw)
    if array.dtype.kind not in "fiub":
        raise DataError(f"data: {source} holds dtype {array.dtype}; expected numbers")
    if array.ndim not in (2, 3):
        raise ShapeError(f"data: {source} has shape {array.shape}; expected [examples, features] or "
                         "[examples, height, width]")
    if array.shape[0] < 2 or array[0].size < 1:
        raise ShapeError(f"data: {source} has shape {array.shape}; expected at least 2 examples of at least 1 feature")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
        raise DomainError(f"data: {source} holds {array[bad]} at index {bad}; expected finite values "
                          "(remove or impute NaN/Inf first)")
    image_shape = tuple(array.shape[1:]) if array.ndim == 3 else None
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (array.shape[0],) or labels.dtype.kind not in "iub":
            raise ShapeError(f"data: {source}'s labels have shape {labels.shape} and dtype {labels.dtype}; expected "
                             f"integers of shape ({array.shape[0]},)")
        labels = labels.astype(np.int64)
    return array.reshape(array.shape[0], -1), labels, image_shape


def load_dataset(source: str, *, seed: int = 0, test_fraction: float = 0.2, likelihood: str = "bernoulli",
                 image_shape: tuple[int, int] | None = None) -> Dataset:
    """Load `source` ("digits", or a path to a .npy/.npz file) and split it.

    **Arguments**
    - `source`: "digits" (1,797 images 8×8 from scikit-learn, scaled to [0, 1]) or a file: a `.npy`
      array `[N, D]` or `[N, H, W]`, or a `.npz` whose data is under one of `DATA_KEYS` (labels,
      optional, under one of `LABEL_KEYS`).
    - `seed`: the split's permutation seed; `test_fraction`: held-out share in (0, 1).
    - `likelihood`: "bernoulli" requires values in [0, 1].
    - `image_shape`: `(H, W)` with H·W = D to plot `[N, D]` data as images.

    **Returns** a `Dataset` (float32). **Raises** `DataError`, `ShapeError` or `DomainError`.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction: expected a number in (0, 1), got {test_fraction!r}")
    if source == DIGITS:
        raw, labels = _digits()
        name = "digits (scikit-learn, 1,797 images 8×8)"
    else:
        raw, labels = _read_file(source)
        name = os.path.basename(source)
    matrix, labels, shape = _as_matrix(repr(source), raw, labels)
    if image_shape is not None:
        if int(np.prod(image_shape)) != matrix.shape[1]:
            raise ShapeError(f"image_shape: {tuple(image_shape)} does not hold {matrix.shape[1]} features")
        shape = tuple(image_shape)
    if likelihood == "bernoulli" and (matrix.min() < 0.0 or matrix.max() > 1.0):
        raise DomainError(f"data: {source!r} has values in [{matrix.min()}, {matrix.max()}]; the Bernoulli "
                          "likelihood needs values in [0, 1] (rescale the data or use --likelihood gaussian)")
    order = np.random.default_rng(seed).permutation(matrix.shape[0])
    n_test = max(1, round(test_fraction * matrix.shape[0]))
    if matrix.shape[0] - n_test < 1:
        raise ShapeError(f"data: {source!r} has {matrix.shape[0]} examples; too few to hold out {n_test}")
    test, train = order[:n_test], order[n_test:]
    split = (lambda idx: labels[idx]) if labels is not None else (lambda idx: None)
    return Dataset(name, matrix[train].astype(np.float32), matrix[test].astype(np.float32), split(train), split(test),
                   shape if shape is None or len(shape) == 2 else None)
