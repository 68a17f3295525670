"""The raw baseline of record throughput, run as its own process like the tap.

For each day it does what any extractor must: one HTTP GET with requests, `json.loads`, and one
Singer RECORD line per row written with `json.dumps` to /dev/null. It prints one JSON object
with the record count and the seconds taken.

    python -m benchmarks.baseline --url URL --token TOKEN --site-id N --method M \
        --metrics a,b --first 2026-01-01 --last 2026-01-20 --page-size 10000 --stream S
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time

import requests

from benchmarks.harness import GET_DATA_PATH


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="Base URL of the API server.")
    parser.add_argument("--token", required=True, help="Access token.")
    parser.add_argument("--site-id", required=True, help="site_id parameter.")
    parser.add_argument("--method", required=True, help="report/getData method.")
    parser.add_argument("--metrics", required=True, help="Comma-separated metrics.")
    parser.add_argument("--first", type=dt.date.fromisoformat, required=True, help="First day.")
    parser.add_argument("--last", type=dt.date.fromisoformat, required=True, help="Last day.")
    parser.add_argument("--page-size", type=int, required=True, help="max_results per request.")
    parser.add_argument("--stream", required=True, help="Stream name in the RECORD lines.")
    args = parser.parse_args(argv)

    session = requests.Session()
    records = 0
    started = time.perf_counter()
    with open("/dev/null", "w", encoding="utf-8") as sink:
        day = args.first
        while day <= args.last:
            api_day = day.strftime("%Y%m%d")
            params = {
                "access_token": args.token,
                "site_id": args.site_id,
                "method": args.method,
                "metrics": args.metrics,
                "start_date": api_day,
                "end_date": api_day,
                "start_index": "0",
                "max_results": str(args.page_size),
            }
            response = session.get(args.url + GET_DATA_PATH, params=params, timeout=120)
            result = json.loads(response.content)["result"]
            fields = result["fields"]
            cells, rows = result["items"][0], result["items"][1]
            extracted = dt.datetime.now(dt.timezone.utc).isoformat()
            for cell, values in zip(cells, rows, strict=True):
                record = {**cell[0], **dict(zip(fields[1:], values, strict=True))}
                record["site_id"] = args.site_id
                record["date"] = day.isoformat()
                message = {
                    "type": "RECORD",
                    "stream": args.stream,
                    "record": record,
                    "time_extracted": extracted,
                }
                sink.write(json.dumps(message) + "\n")
                records += 1
            day += dt.timedelta(days=1)
    seconds = time.perf_counter() - started
    json.dump({"records": records, "seconds": seconds}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
