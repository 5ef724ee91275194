"""The answer budget: a forwarder reads an upstream answer only once its bytes fit, and holds them until it is done,
so a thousand 3 MB answers coming back together do not all sit in memory at once."""

import asyncio

import pytest

from aihubmix_sandbox import render
from generations.catalog.upstream_body import provider_call_from_stored
from generations.catalog.validation import generation_request_validate
from generations.providers import AIHubMixClient
from generations.providers.budget import AnswerBudget, AnswerHold


def test_budget_is_weighted_and_first_come_first_served():
    async def scenario() -> list[str]:
        budget = AnswerBudget(10)
        order: list[str] = []
        assert await budget.acquire(6) == 6

        async def take(name: str, nbytes: int) -> None:
            await budget.acquire(nbytes)
            order.append(name)

        big = asyncio.create_task(take("big", 8))  # waits: 6 + 8 > 10
        await asyncio.sleep(0)
        small = asyncio.create_task(take("small", 1))  # would fit, but waits behind the big one
        await asyncio.sleep(0)
        assert order == [] and budget.used_bytes == 6
        budget.release(6)
        await asyncio.gather(big, small)
        assert budget.used_bytes == 9
        return order

    assert asyncio.run(scenario()) == ["big", "small"]


def test_an_answer_larger_than_the_budget_goes_alone_and_a_cancelled_waiter_gives_way():
    async def scenario() -> None:
        budget = AnswerBudget(10)
        assert await budget.acquire(3) == 3
        waiting = asyncio.create_task(budget.acquire(50))
        await asyncio.sleep(0)
        later = asyncio.create_task(budget.acquire(2))
        await asyncio.sleep(0)
        waiting.cancel()  # its client went away: the one behind it must not wait for nothing
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert await later == 2 and budget.used_bytes == 5
        budget.release(5)
        assert await budget.acquire(50) == 10  # capped at the whole budget: it waits for an empty one
        hold = AnswerHold(budget)
        hold.release()
        hold.release()  # nothing held, twice: harmless
        assert budget.used_bytes == 10

    asyncio.run(scenario())


@pytest.mark.django_db
def test_the_client_reads_an_answer_only_when_its_size_fits(aihubmix_sandbox):
    """Two gpt-image-2 calls of ~3 MB answers against the real sandbox, with room for one: the second answer
    waits, unread, until the first hold is released; then both succeed."""
    render.answer_bytes_set(3_000_000)
    try:
        request = generation_request_validate(
            model="openai/gpt-image-2", operation="generate", prompt="budget", n=None, size="1024x1024",
            quality="low", negative_prompt=None, seed=None, params={}, input_image_count=0,
        )
        call = provider_call_from_stored(
            model_id=request.model_id, interface=request.interface, operation="generate",
            body=request.upstream_body, images=[], mask=None,
        )

        async def scenario() -> tuple[int, int, int]:
            budget = AnswerBudget(4 * 1024 * 1024)
            first, second = AnswerHold(budget), AnswerHold(budget)
            async with AIHubMixClient(
                api_key="sk-sandbox-test", base_url=aihubmix_sandbox.base_url, tasks_url=aihubmix_sandbox.tasks_url,
            ) as client:
                one = await client.run(call, hold=first)
                used_after_first = budget.used_bytes
                two = asyncio.create_task(client.run(call, hold=second))
                await asyncio.sleep(0.5)
                assert not two.done()  # answered by the sandbox, but not read: no room
                first.release()
                result = await asyncio.wait_for(two, 10)
                second.release()
            return used_after_first, len(one.outputs[0].b64_json), len(result.outputs[0].b64_json)

        used, one_size, two_size = asyncio.run(scenario())
        assert 3_000_000 <= used <= 4 * 1024 * 1024  # the answer's Content-Length was counted
        assert one_size >= 3_000_000 and two_size >= 3_000_000
    finally:
        render.answer_bytes_set(0)


@pytest.mark.django_db
def test_an_answer_that_trickles_in_ends_at_the_read_timeout():
    """aiohttp's read timeout runs between two reads: an answer sending a byte every 50 ms would hold its call (and
    its share of the budget) forever. The whole body must arrive within the read timeout; else the outcome is
    unknown, as for any read timeout after the request was sent."""
    import socket
    import threading
    import time

    from generations.providers import UnknownOutcomeError

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
            while not stop.is_set():
                time.sleep(0.05)
                try:
                    connection.sendall(b" ")
                except OSError:
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    request = generation_request_validate(
        model="openai/gpt-image-2", operation="generate", prompt="slow", n=None, size="1024x1024",
        quality="low", negative_prompt=None, seed=None, params={}, input_image_count=0,
    )
    call = provider_call_from_stored(
        model_id=request.model_id, interface=request.interface, operation="generate", body=request.upstream_body,
        images=[], mask=None,
    )

    async def scenario() -> float:
        base = f"http://127.0.0.1:{port}/v1"
        async with AIHubMixClient(api_key="k", base_url=base, tasks_url=f"{base}/tasks",
                                  read_timeout_seconds=0.5) as client:
            started = time.monotonic()
            with pytest.raises(UnknownOutcomeError) as raised:
                await client.run(call, hold=AnswerHold(AnswerBudget(1 << 20)))
            assert raised.value.code == "upstream_timeout"
            return time.monotonic() - started

    try:
        assert asyncio.run(scenario()) < 3
    finally:
        stop.set()
        listener.close()
