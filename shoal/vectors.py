"""Vectors as Shoal exchanges and checks them: little-endian float32, finite, of the
collection's dimension.

Plain numpy, no protobuf, so the services' core layers check vectors with the
same function the api layers and the SDK use.
"""

from collections.abc import Iterable, Sequence

import numpy as np
import numpy.typing as npt

from shoal.errors import InvalidArgument

VectorLike = Sequence[float] | npt.NDArray[np.floating]


def vector_to_f32(vector: VectorLike) -> bytes:
    """A vector as little-endian float32 bytes, the form Shoal services exchange."""
    return np.ascontiguousarray(vector, dtype="<f4").tobytes()


def vector_from_fields(values: Iterable[float], f32: bytes, what: str) -> npt.NDArray[np.float32]:
    """The vector given either as packed floats or as float32 bytes (not both)."""
    if f32:
        if values:
            raise InvalidArgument(f"{what}: give the vector as floats or as bytes, not both")
        if len(f32) % 4:
            raise InvalidArgument(f"{what}: vector bytes must be a multiple of 4 (float32)")
        return np.frombuffer(f32, dtype="<f4")
    return np.asarray(values, dtype=np.float32)


def check_vector(vector: npt.NDArray[np.float32], dimension: int, what: str) -> None:
    """Reject a vector of the wrong dimension or with NaN or infinity."""
    if vector.shape[-1] != dimension:
        raise InvalidArgument(
            f"{what}: dimension {vector.shape[-1]}, collection expects {dimension}"
        )
    if not np.isfinite(vector).all():
        raise InvalidArgument(f"{what}: vector contains NaN or infinity")
