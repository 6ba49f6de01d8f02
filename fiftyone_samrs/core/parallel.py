"""A bounded, ordered parallel map over threads (image decoding, tiling, previews)."""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Deque, Iterable, Iterator, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int,
                ahead: int = 2) -> Iterator[R]:
    """``fn`` over ``items`` in ``workers`` threads, yielding the results in input order.

    At most ``ahead * workers`` items are in flight, so a long (or lazy) input
    is never read far ahead of the consumer. An exception of ``fn`` is raised
    when its item's turn comes; closing the generator waits for the items in
    flight. With ``workers <= 1`` it runs in the calling thread.
    """
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: Deque[Future] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= ahead * workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
