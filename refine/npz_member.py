"""One array of an npz archive, read from the file each time it is indexed."""

from __future__ import annotations

import numpy as np

from refine.errors import InputError


class NpzMember:
    """A stand-in for the array ``key`` of ``path`` (shape and dtype known up front).

    ``member[index]`` (or ``np.asarray(member)``) reads the whole member from the file,
    indexes it and lets it go, so only the part the caller keeps stays in memory. The
    file must not change meanwhile: a member whose shape or dtype differ is an input error.
    """

    def __init__(self, path: str, key: str, shape: tuple[int, ...], dtype: np.dtype) -> None:
        self.path = path
        self.key = key
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)

    def read(self) -> np.ndarray:
        try:
            with np.load(self.path, allow_pickle=False) as data:
                arr = data[self.key]
        except (ValueError, OSError, KeyError, EOFError) as err:
            raise InputError(f"{self.path}: entry {self.key!r} is unreadable now ({err})") from err
        if arr.shape != self.shape or arr.dtype != self.dtype:
            raise InputError(
                f"{self.path}: entry {self.key!r} changed while in use (now {arr.dtype} "
                f"{list(arr.shape)}, was {self.dtype} {list(self.shape)})"
            )
        return arr

    def __getitem__(self, index) -> np.ndarray:
        return self.read()[index]

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        arr = self.read()
        return arr if dtype is None else arr.astype(dtype)

    def __len__(self) -> int:
        return self.shape[0]
