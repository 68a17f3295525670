"""Run the demo pipeline: the local emulator, then `meltano run` into DuckDB, then row counts.

`make demo` calls this after installing the plugins. The emulator runs only while the
pipeline runs and is stopped even when the pipeline fails. The demo token store is removed
first because a freshly started emulator only accepts its own seed refresh token.

A second run reads only the look-back window and the new days, and the target upserts on
the primary keys, so row counts grow only by new days.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
OUTPUT_DIR = PROJECT_ROOT / "output"
TOKEN_STORE = OUTPUT_DIR / "demo-tokens.json"
DATABASE = OUTPUT_DIR / "demo.duckdb"
EMULATOR_LOG = OUTPUT_DIR / "emulator.log"
DUCKDB_PYTHON = PROJECT_ROOT / ".meltano" / "loaders" / "target-duckdb" / "venv" / "bin" / "python"
ROW_COUNT_SCRIPT = PROJECT_ROOT / "scripts" / "duckdb_row_counts.py"
SCHEMA = "tap_baidu_tongji"
STARTUP_TIMEOUT_SECONDS = 30.0
SHUTDOWN_TIMEOUT_SECONDS = 10.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765, help="emulator port on 127.0.0.1")
    parser.add_argument(
        "--meltano",
        default=str(PROJECT_ROOT / ".venv-meltano" / "bin" / "meltano"),
        help="meltano executable",
    )
    return parser.parse_args()


def port_is_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start_emulator(port: int) -> subprocess.Popen[bytes]:
    """Start the emulator in the background and wait until it accepts connections."""
    if port_is_open(port):
        sys.exit(
            f"Port {port} on 127.0.0.1 is already in use. Stop the process that listens "
            f"there, or run `make demo EMULATOR_PORT=<free port>`."
        )

    log = EMULATOR_LOG.open("wb")
    # The commands in this script are fixed apart from the port and the meltano path that
    # the caller passes, so the S603 warnings about untrusted input do not apply.
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "tap_baidu_tongji.emulator", "--port", str(port)],
        cwd=PROJECT_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()

    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not port_is_open(port):
        if process.poll() is not None:
            sys.exit(
                f"The emulator exited with status {process.returncode} before it accepted "
                f"connections. Its output is in {EMULATOR_LOG}."
            )
        if time.monotonic() > deadline:
            stop_emulator(process)
            sys.exit(
                f"The emulator did not accept connections on port {port} within "
                f"{STARTUP_TIMEOUT_SECONDS:.0f} s. Its output is in {EMULATOR_LOG}."
            )
        time.sleep(0.2)

    print(f"Emulator started on http://127.0.0.1:{port} (pid {process.pid}).", flush=True)
    return process


def stop_emulator(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=SHUTDOWN_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    print(f"Emulator stopped (pid {process.pid}).", flush=True)


def run_pipeline(meltano: str) -> int:
    command = [meltano, "--environment", "demo", "run", "tap-baidu-tongji", "target-duckdb"]
    if not DATABASE.exists():
        # Bookmarks of an earlier demo would skip days that the new database lacks.
        print(f"{DATABASE} does not exist, so the saved demo state is ignored.", flush=True)
        command.append("--full-refresh")
    print("Running: " + " ".join(command), flush=True)
    return subprocess.run(command, cwd=PROJECT_ROOT, check=False).returncode  # noqa: S603


def print_row_counts() -> int:
    # The target's own venv has the duckdb package that wrote the file, so the reader always
    # understands its storage format.
    command = [str(DUCKDB_PYTHON), str(ROW_COUNT_SCRIPT), str(DATABASE), SCHEMA]
    return subprocess.run(command, check=False).returncode  # noqa: S603


def main() -> int:
    args = parse_args()
    OUTPUT_DIR.mkdir(exist_ok=True)
    TOKEN_STORE.unlink(missing_ok=True)

    emulator = start_emulator(args.port)
    try:
        status = run_pipeline(args.meltano)
    finally:
        stop_emulator(emulator)

    if status != 0:
        print(f"meltano run failed with exit status {status}.", file=sys.stderr)
        return status
    return print_row_counts()


if __name__ == "__main__":
    sys.exit(main())
