"""The Singer SDK's standard tap tests, run against the emulator on loopback."""

from __future__ import annotations

import atexit
import tempfile
from pathlib import Path

from singer_sdk.testing import SuiteConfig, get_tap_test_class

from tap_baidu_tongji.emulator import Emulator
from tap_baidu_tongji.tap import TapBaiduTongji
from tests.conftest import tap_config

# The SDK builds its test class at collection time, so the emulator must already run here.
_EMULATOR = Emulator(port=0).start()
atexit.register(_EMULATOR.stop)
_FOLDER = Path(tempfile.mkdtemp(prefix="tap-baidu-tongji-standard-"))

STANDARD_CONFIG = tap_config(
    _EMULATOR,
    _FOLDER,
    start_date="2026-11-01",
    end_date="2026-11-02",
    lookback_days=0,
)


def catalog_with_every_stream() -> dict:
    """Select every stream, including those not selected by default, so all are tested."""
    catalog = TapBaiduTongji(config=STANDARD_CONFIG, parse_env_config=False).catalog_dict
    for entry in catalog["streams"]:
        for metadata in entry["metadata"]:
            if metadata["breadcrumb"] == []:
                metadata["metadata"]["selected"] = True
    return catalog


TestTapBaiduTongji = get_tap_test_class(
    tap_class=TapBaiduTongji,
    config=STANDARD_CONFIG,
    parse_env_config=False,
    catalog=catalog_with_every_stream(),
    suite_config=SuiteConfig(
        max_records_limit=50,
    ),
)
