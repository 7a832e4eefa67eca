"""Whole-chunk reads from a chip store array, memory-mapped where the chunk is raw bytes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BytesCodec
from zarr.storage import LocalStore


class ChunkReader:
    """Read chunk ``i`` (chips ``i*n .. (i+1)*n``) of a chip store array.

    The chip store writes its arrays uncompressed to a local Zarr v3 store, so each chunk file
    is the chunk's array in C order (the ``bytes`` codec, little-endian) under the key the
    array's chunk-key encoding gives. Such chunks are memory-mapped directly: zarr-python 3
    routes every read through its event-loop thread and copies the bytes twice, which costs
    about a millisecond per chunk and makes reading several times slower than a memory map of
    the same bytes. Any other array (compressed, sharded, remote) is read through Zarr.

    Args:
        array: The Zarr array.
    """

    def __init__(self, array: zarr.Array) -> None:
        self.array = array
        self.chunk_length = int(array.chunks[0])
        self.chunk_shape = tuple(int(c) for c in array.chunks)
        self.dtype = np.dtype(array.dtype)
        codecs: tuple[object, ...] = tuple(getattr(array.metadata, "codecs", ()))
        store = array.store
        self._root: Path | None = None
        first = codecs[0] if len(codecs) == 1 else None
        raw = (
            isinstance(first, BytesCodec)
            and (first.endian is None or first.endian.value == "little")
            and isinstance(store, LocalStore)
        )
        if raw and isinstance(store, LocalStore):
            self._root = Path(store.root) / array.path
            self.dtype = self.dtype.newbyteorder("<")

    @property
    def memory_mapped(self) -> bool:
        """Whether chunks are memory-mapped (raw local chunks)."""
        return self._root is not None

    def read(self, chunk: int) -> np.ndarray:
        """The chips of one chunk (fewer for the last, partial chunk).

        Args:
            chunk: Chunk index along the chip axis.

        Returns:
            Array of shape (chips in the chunk, ...), memory-mapped or in memory.
        """
        start = chunk * self.chunk_length
        stop = min(start + self.chunk_length, int(self.array.shape[0]))
        if self._root is None:
            return np.asarray(self.array[start:stop])
        key = self.array.metadata.chunk_key_encoding.encode_chunk_key(  # type: ignore[union-attr]
            (chunk,) + (0,) * (len(self.chunk_shape) - 1)
        )
        path = self._root / key
        if not path.exists():  # never written: every value is the fill value
            fill = self.array.metadata.fill_value
            return np.full((stop - start, *self.chunk_shape[1:]), fill, dtype=self.dtype)
        # Zarr v3 stores edge chunks at full chunk shape; keep the chips inside the array.
        mapped = np.memmap(path, dtype=self.dtype, mode="r", shape=self.chunk_shape)
        return mapped[: stop - start]
