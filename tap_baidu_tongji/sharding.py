"""Split the sites of one account across N tap processes by a stable hash of the site id.

A site belongs to shard `sha256(decimal site id) mod shard_count`. The digest is the same
on every machine and Python version (unlike the built-in `hash()`, which is randomized per
process), so a fleet needs no hand-kept site lists, and a site added later lands in exactly
one shard without any change to the fleet's settings.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

MAX_SHARD_COUNT = 1000
"""A sanity bound that catches typos such as a site id put into shard_count."""

_Site = TypeVar("_Site", bound=Mapping[str, Any])


def shard_of(site_id: int, shard_count: int) -> int:
    """Return the 0-based shard of `site_id` among `shard_count` shards."""
    if shard_count < 1:
        raise ValueError(f"shard_count must be at least 1, not {shard_count}")
    digest = hashlib.sha256(str(int(site_id)).encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big") % shard_count


@dataclass(frozen=True)
class Shard:
    """The part of the sites that one tap process reads."""

    index: int
    """0-based, less than `count`."""
    count: int

    def contains(self, site_id: int) -> bool:
        """Return whether `site_id` belongs to this shard."""
        return shard_of(site_id, self.count) == self.index


def _whole_number(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None


def check_shard_settings(config: Mapping[str, Any]) -> list[str]:
    """Return one line per invalid shard setting, naming the setting and the fix."""
    index_value = config.get("shard_index")
    count_value = config.get("shard_count")
    if index_value is None and count_value is None:
        return []
    if count_value is None:
        return [
            "shard_index is set but shard_count is not: set shard_count to the number of "
            "shards (every shard of the fleet uses the same value), or remove shard_index."
        ]
    if index_value is None:
        return [
            "shard_count is set but shard_index is not: set shard_index to this process's "
            "shard, from 0 to shard_count - 1, or remove shard_count."
        ]

    count = _whole_number(count_value)
    if count is None or not 1 <= count <= MAX_SHARD_COUNT:
        return [
            f"Invalid shard_count {count_value!r}: expected a whole number from 1 to "
            f"{MAX_SHARD_COUNT}, the same in every shard of the fleet."
        ]
    index = _whole_number(index_value)
    if index is None or not 0 <= index < count:
        return [
            f"Invalid shard_index {index_value!r}: expected a whole number from 0 to "
            f"{count - 1}, because shard_index counts from 0 and must be less than "
            f"shard_count {count}."
        ]
    return []


def shard_from_config(config: Mapping[str, Any]) -> Shard | None:
    """Return the configured shard, or None when the settings do not shard the sites.

    Raises:
        ValueError: the shard settings are invalid; the message is from `check_shard_settings`.
    """
    errors = check_shard_settings(config)
    if errors:
        raise ValueError(errors[0])
    index = _whole_number(config.get("shard_index"))
    count = _whole_number(config.get("shard_count"))
    if index is None or count is None:
        return None
    return Shard(index=index, count=count)


def sites_in_shard(
    sites: Iterable[_Site], config: Mapping[str, Any], logger: logging.Logger
) -> list[_Site]:
    """Return the sites of this process's shard, or every site when the tap is not sharded."""
    all_sites = list(sites)
    shard = shard_from_config(config)
    if shard is None:
        return all_sites
    selected = [site for site in all_sites if shard.contains(int(site["site_id"]))]
    logger.info(
        "Shard %d of %d (shard_index %d, shard_count %d) reads %d of %d sites: %s.",
        shard.index + 1,
        shard.count,
        shard.index,
        shard.count,
        len(selected),
        len(all_sites),
        ", ".join(str(site["site_id"]) for site in selected) or "none",
    )
    return selected
