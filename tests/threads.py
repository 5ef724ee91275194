"""Run work on real threads, each with its own database connection, all released at once."""

import threading
from collections.abc import Callable

from django.db import connection


def run_in_threads(count: int, work: Callable[[int], object], *, timeout: float = 120) -> list[object]:
    """Each result is what `work(index)` returned or the exception it raised."""
    barrier = threading.Barrier(count)
    results: list[object] = [None] * count

    def run(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        except Exception as exc:
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    return results
