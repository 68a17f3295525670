"""Print the row count of every table in one schema of a DuckDB file.

Usage: duckdb_row_counts.py DATABASE_FILE SCHEMA

Run it with a Python that has the duckdb package, such as the target-duckdb plugin venv.
Exits with status 1 when the schema has no tables.
"""

from __future__ import annotations

import sys

import duckdb


def quote(identifier: str) -> str:
    """Quote an SQL identifier, doubling any double quote inside it."""
    return '"' + identifier.replace('"', '""') + '"'


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    database, schema = sys.argv[1], sys.argv[2]

    with duckdb.connect(database, read_only=True) as connection:
        tables = [
            row[0]
            for row in connection.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = ? ORDER BY table_name",
                [schema],
            ).fetchall()
        ]
        counts = {}
        for table in tables:
            # Identifiers cannot be bound as parameters, so they are quoted instead.
            query = f"SELECT count(*) FROM {quote(schema)}.{quote(table)}"  # noqa: S608
            counts[table] = connection.execute(query).fetchone()[0]

    if not counts:
        print(f"No tables in schema {schema} of {database}.", file=sys.stderr)
        return 1

    width = max(len(table) for table in counts)
    print(f"Rows per table in {database}, schema {schema}:")
    for table, count in counts.items():
        print(f"  {table:<{width}}  {count:>8}")
    print(f"  {'total':<{width}}  {sum(counts.values()):>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
