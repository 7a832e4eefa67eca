"""Reading the (Geo)Parquet tables that stages hand to each other, with errors that name the file.

pyarrow reports a truncated or foreign file as ``ArrowInvalid: Parquet magic bytes not found``
without the path, deep in a traceback; every stage reads its inputs through :func:`read_table`
so that a damaged table is one line that names the file and the stage that writes it.
"""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyarrow as pa

from eo_mmcl.errors import SourceError


def read_table(
    path: str | Path, *, geo: bool = False, columns: list[str] | None = None, writer: str = ""
) -> pd.DataFrame:
    """Read a Parquet (or GeoParquet) table, refusing a missing, truncated or foreign file.

    Args:
        path: The table.
        geo: Read it as GeoParquet (a GeoDataFrame with its CRS).
        columns: Read only these columns.
        writer: The command that writes the table, named in the error (e.g. ``eo-mmcl catalog``).

    Returns:
        The table.

    Raises:
        SourceError: If the file is missing or not a readable (Geo)Parquet table.
    """
    path = Path(path)
    hint = f"; rerun {writer} to write it again" if writer else ""
    if not path.is_file():
        raise SourceError(f"{path}: table not found{hint}")
    try:
        if geo:
            return gpd.read_parquet(path, columns=columns)
        return pd.read_parquet(path, columns=columns)
    # OSError: pyarrow's "Couldn't deserialize thrift" on a cut footer; ValueError: geopandas
    # on a Parquet file without geo metadata.
    except (pa.ArrowException, OSError, ValueError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SourceError(
            f"{path}: not a readable {'GeoParquet' if geo else 'Parquet'} table ({reason}){hint}"
        ) from err
