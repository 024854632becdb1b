#!/usr/bin/env python3
"""Convert a Parquet file to CSV, keeping every column.

    python scripts/parquet_to_csv.py IN.parquet OUT.csv

Writes UTF-8 with a header row. Nulls become empty cells; dates are written as
YYYY-MM-DD and timestamps in ISO form (pyarrow's CSV writer). Prints the
column names, their Arrow types and the row count to stderr.
Exit code 2 with a message if IN is missing or is not a readable Parquet file.
"""

import argparse
import sys
from pathlib import Path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input", help="input .parquet file")
    ap.add_argument("output", help="output .csv file (overwritten)")
    args = ap.parse_args(argv)

    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    src = Path(args.input)
    if not src.is_file():
        print(f"error: {src} does not exist or is not a file", file=sys.stderr)
        return 2
    try:
        table = pq.read_table(src)
    except Exception as e:  # pyarrow raises several types here
        print(f"error: cannot read {src} as Parquet: {e}", file=sys.stderr)
        return 2

    out = Path(args.output)
    if out.parent and not out.parent.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
    # pyarrow writes UTF-8, quotes strings only where needed, header row first.
    pacsv.write_csv(
        table,
        out,
        write_options=pacsv.WriteOptions(include_header=True, quoting_style="needed"),
    )
    cols = ", ".join(f"{f.name}:{f.type}" for f in table.schema)
    print(f"{src} -> {out}: {table.num_rows} rows; columns: {cols}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
