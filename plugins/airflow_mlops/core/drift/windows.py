"""Reading a window: a DataFrame, or a CSV/Parquet file or folder of them, chunk by chunk (bounded memory)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from airflow_mlops.core.drift.report import DriftInputError

if TYPE_CHECKING:
    from collections.abc import Iterator

RESERVOIR_SIZE = 200_000  # reference values per numeric feature that set the bin edges of a chunked input
SAMPLE_ROWS = 10_000  # rows read to infer column types when no config names them


class WindowReader:
    """A DataFrame, or a CSV/Parquet file or folder of them, read in chunks."""

    def __init__(self, data: pd.DataFrame | str | Path, side: str) -> None:
        self.side = side
        self.frame: pd.DataFrame | None = None
        self.files: list[Path] = []
        if isinstance(data, pd.DataFrame):
            self.label = f"{side} DataFrame"
            self.columns = [str(c) for c in data.columns]
            if len(set(self.columns)) != len(self.columns):
                raise DriftInputError(f"{self.label}: duplicated column names")
            self.frame = data.set_axis(self.columns, axis=1) if list(data.columns) != self.columns else data
            return
        path = Path(data)
        self.label = str(path)
        if path.is_dir():
            self.files = sorted(
                p
                for p in path.iterdir()
                if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in (".csv", ".parquet")
            )
            if not self.files:
                raise DriftInputError(f"{path}: the {side} folder has no .csv or .parquet files")
        elif path.is_file():
            self.files = [path]
        else:
            raise DriftInputError(f"{path}: the {side} window is not a file or folder (not found)")
        self.columns = self._header(self.files[0])
        for f in self.files[1:]:
            cols = self._header(f)
            if set(cols) != set(self.columns):
                raise DriftInputError(
                    f"{f}: columns differ from {self.files[0].name} (missing: "
                    f"{', '.join(sorted(set(self.columns) - set(cols))) or '-'}; extra: "
                    f"{', '.join(sorted(set(cols) - set(self.columns))) or '-'}); the files of a window share columns"
                )

    def reservoir_size(self) -> int:
        """A DataFrame's sample is the whole column (exact quantiles); a file's is bounded."""
        return max(RESERVOIR_SIZE, len(self.frame)) if self.frame is not None else RESERVOIR_SIZE

    @staticmethod
    def _is_parquet(path: Path) -> bool:
        return path.suffix.lower() == ".parquet"

    def _header(self, path: Path) -> list[str]:
        try:
            if self._is_parquet(path):
                import pyarrow.parquet as pq

                return list(pq.ParquetFile(path).schema_arrow.names)
            return [str(c) for c in pd.read_csv(path, nrows=0).columns]
        except pd.errors.EmptyDataError:
            raise DriftInputError(f"{path}: the {self.side} file is empty (no header)") from None
        except Exception as exc:
            raise DriftInputError(f"{path}: cannot read the {self.side} file ({exc})") from None

    def sample(self, columns: list[str]) -> pd.DataFrame:
        """The first rows, to infer column types."""
        if self.frame is not None:
            return self.frame[columns].head(SAMPLE_ROWS)
        for chunk in self.chunks(columns, SAMPLE_ROWS, []):
            return chunk
        return pd.DataFrame({c: [] for c in columns})

    def chunks(self, columns: list[str], chunk_rows: int, text_columns: list[str]) -> Iterator[pd.DataFrame]:
        """The columns, chunk by chunk (categorical columns of a CSV are read as text)."""
        if self.frame is not None:
            yield self.frame[columns]
            return
        for path in self.files:
            try:
                if self._is_parquet(path):
                    import pyarrow.parquet as pq

                    pf = pq.ParquetFile(path)
                    # one row group at a time: a single iter_batches over the file keeps every row group's
                    # pre-buffered column chunks until it ends (memory grows with the file)
                    for group in range(pf.metadata.num_row_groups):
                        for batch in pf.iter_batches(batch_size=chunk_rows, row_groups=[group], columns=columns):
                            yield batch.to_pandas()
                else:
                    dtype = {c: "str" for c in text_columns if c in columns}
                    with pd.read_csv(path, usecols=columns, chunksize=chunk_rows, dtype=dtype) as reader:
                        yield from reader
            except DriftInputError:
                raise
            except pd.errors.EmptyDataError:
                continue
            except (ValueError, OSError, pd.errors.ParserError) as exc:
                raise DriftInputError(f"{path}: cannot read the {self.side} file ({exc})") from None


def row_keys(rows: np.ndarray) -> np.ndarray:
    """A pseudo-random 64-bit key per row number (splitmix64): the bottom-k sample's ordering."""
    with np.errstate(over="ignore"):
        z = rows.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))
