"""Reads a Parquet file with pyarrow from PyPI (a reader we did not write) and prints one JSON
object: its schema (column name, type, nullable) and its rows, each double as its repr (the
shortest text that reads back as the same double, which a JSON number parser need not keep)."""
import json
import sys

import pyarrow.parquet as pq


def main(path):
    table = pq.read_table(path)
    schema = [{"name": f.name, "type": str(f.type), "nullable": f.nullable} for f in table.schema]
    rows = [{k: repr(v) if isinstance(v, float) else v for k, v in row.items()} for row in table.to_pylist()]
    print(json.dumps({"schema": schema, "rows": rows}))


if __name__ == "__main__":
    main(sys.argv[1])
