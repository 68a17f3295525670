"""A local emulator of the Baidu Tongji OpenAPI for tests and benchmarks.

It plays the OAuth token endpoint, config/getSiteList and report/getData with deterministic
synthetic data generated from the report table, and can inject the failures and the
uncertain behaviours of the real service (see docs/emulator.md).
"""

from tap_baidu_tongji.emulator.faults import ERROR_MESSAGES, Failure, FailureKind, FaultPlan
from tap_baidu_tongji.emulator.server import Emulator, LoggedRequest

__all__ = ["ERROR_MESSAGES", "Emulator", "Failure", "FailureKind", "FaultPlan", "LoggedRequest"]
