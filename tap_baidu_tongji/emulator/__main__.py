"""Command line of the emulator: `python -m tap_baidu_tongji.emulator --port 8765`."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import signal
import sys
import threading
from types import FrameType

from tap_baidu_tongji.emulator.faults import Failure, FaultPlan
from tap_baidu_tongji.emulator.server import Emulator


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tap-baidu-tongji-emulator",
        description="Serve a local emulator of the Baidu Tongji OpenAPI on 127.0.0.1.",
    )

    server = parser.add_argument_group("server")
    server.add_argument("--port", type=int, default=8765, help="TCP port; 0 picks a free one.")
    server.add_argument(
        "--host", default="127.0.0.1", choices=["127.0.0.1"], help="Bind address (loopback only)."
    )
    server.add_argument("--client-id", default="demo-api-key", help="Accepted API Key.")
    server.add_argument("--client-secret", default="demo-secret-key", help="Accepted Secret Key.")
    server.add_argument(
        "--seed-refresh-token",
        default="demo-refresh-token",
        help="A refresh token that is valid at start, to begin a token chain.",
    )
    server.add_argument(
        "--access-token-ttl",
        type=float,
        default=2_592_000,
        help="Access token lifetime in seconds (also sent as expires_in). Default: 30 days.",
    )

    data = parser.add_argument_group("data")
    data.add_argument(
        "--today",
        type=dt.date.fromisoformat,
        help="The server's today as YYYY-MM-DD. Default: today in Beijing time.",
    )
    data.add_argument(
        "--page-size-default",
        type=int,
        default=20,
        help="Rows per page when a request has no max_results.",
    )
    data.add_argument(
        "--page-count",
        type=int,
        default=0,
        help="Paths in the visit/toppage/a and visit/landingpage/a catalogues (rows per day).",
    )
    data.add_argument(
        "--traffic-scale",
        type=float,
        default=1.0,
        help="Factor on every site's daily page views.",
    )

    faults = parser.add_argument_group("faults")
    faults.add_argument(
        "--latency-ms", type=float, default=0.0, help="Fixed delay added to every request."
    )
    faults.add_argument(
        "--rate-limit",
        type=int,
        help="Data calls allowed per rolling second; more get error 4.",
    )
    faults.add_argument(
        "--error-status",
        type=int,
        default=200,
        help="HTTP status of data-call error bodies (default 200).",
    )
    faults.add_argument(
        "--fail",
        action="append",
        default=[],
        metavar="SPEC",
        help=(
            "Inject a failure, repeatable. SPEC is comma-separated: one of code=N, "
            "http=STATUS, timeout=SECONDS, reset, truncated; optional status=, retry_after=, "
            "endpoint=getData|getSiteList|token|any, method=, site=, date=YYYYMMDD, nth=, "
            "first=. Example: code=111,method=trend/time/a,first=1"
        ),
    )
    faults.add_argument(
        "--sticky-refresh-token",
        action="store_true",
        help="A refresh returns the same refresh token, which stays valid.",
    )
    faults.add_argument(
        "--drop-refresh-responses",
        type=int,
        default=0,
        metavar="N",
        help="The next N refresh grants consume the token, then close without a response.",
    )
    faults.add_argument("--page-size-cap", type=int, help="Server-side maximum rows per page.")
    faults.add_argument(
        "--ignore-max-results",
        action="store_true",
        help="Return every row from start_index on, whatever max_results requests.",
    )
    faults.add_argument(
        "--shuffle-metrics",
        action="store_true",
        help="List metrics in fields in another order than requested.",
    )
    faults.add_argument(
        "--extra-cell-keys", action="store_true", help="Add unknown keys to dimension cells."
    )
    faults.add_argument(
        "--raw-utf8", action="store_true", help="Send raw UTF-8 JSON instead of \\u escapes."
    )
    faults.add_argument("--omit-offset", action="store_true", help="Leave offset out of results.")
    faults.add_argument("--omit-total", action="store_true", help="Leave total out of results.")
    return parser


def fault_plan_from(args: argparse.Namespace) -> FaultPlan:
    return FaultPlan(
        failures=[Failure.parse(spec) for spec in args.fail],
        latency_seconds=args.latency_ms / 1000,
        rate_limit_per_second=args.rate_limit,
        error_http_status=args.error_status,
        sticky_refresh_token=args.sticky_refresh_token,
        drop_refresh_responses=args.drop_refresh_responses,
        page_size_cap=args.page_size_cap,
        ignore_max_results=args.ignore_max_results,
        shuffle_metrics=args.shuffle_metrics,
        extra_cell_keys=args.extra_cell_keys,
        raw_utf8=args.raw_utf8,
        omit_offset=args.omit_offset,
        omit_total=args.omit_total,
    )


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        faults = fault_plan_from(args)
    except ValueError as error:
        parser.error(str(error))

    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s"
    )
    emulator = Emulator(
        port=args.port,
        today=args.today,
        page_size_default=args.page_size_default,
        faults=faults,
        host=args.host,
        client_id=args.client_id,
        client_secret=args.client_secret,
        seed_refresh_token=args.seed_refresh_token,
        access_token_ttl_seconds=args.access_token_ttl,
        page_count=args.page_count,
        traffic_scale=args.traffic_scale,
    )
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        logging.getLogger("tap_baidu_tongji.emulator").info(
            "Received signal %s, stopping", signal.Signals(signum).name
        )
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)

    emulator.start()
    print(f"Baidu Tongji emulator at {emulator.url}", file=sys.stderr, flush=True)
    print(
        f"client_id={emulator.client_id} client_secret={emulator.client_secret} "
        f"refresh_token={emulator.seed_refresh_token}",
        file=sys.stderr,
        flush=True,
    )
    print(
        f"authorization code for redirect_uri=oob: {emulator.issue_authorization_code()}",
        file=sys.stderr,
        flush=True,
    )
    try:
        while not stop_requested.wait(0.5):
            pass
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
