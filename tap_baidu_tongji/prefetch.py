"""Fetch ahead in threads while handing results back in their original order."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def ordered_prefetch(
    executor: Executor | None,
    function: Callable[[Item], Result],
    items: Iterable[Item],
    max_in_flight: int,
) -> Iterator[tuple[Item, Result]]:
    """Yield `(item, function(item))` in the order of `items`, up to `max_in_flight` ahead.

    Without an executor (or with `max_in_flight` 1) each item runs inline when it is reached.
    The first failure is raised when its item's turn comes, so every earlier result has been
    yielded; items not started yet are cancelled.
    """
    if executor is None or max_in_flight <= 1:
        for item in items:
            yield item, function(item)
        return

    iterator = iter(items)
    pending: deque[tuple[Item, Future[Result]]] = deque()
    try:
        for item in iterator:
            pending.append((item, executor.submit(function, item)))
            if len(pending) >= max_in_flight:
                break
        while pending:
            item, future = pending.popleft()
            result = future.result()
            for next_item in iterator:
                pending.append((next_item, executor.submit(function, next_item)))
                break
            yield item, result
    finally:
        for _, future in pending:
            future.cancel()
