"""The headless Chromium the browser tests drive (Debian's package; scripts/ci-system-packages.sh installs it), and
the steps every staff page test shares: a browser, a staff login, and "the page fits the screen"."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
STAFF_PASSWORD = "correct horse battery"


@contextmanager
def staff_page(live_server: Any, *, email: str, width: int, next_path: str = "/admin/") -> Iterator[Any]:
    """A Playwright page at `width` × 900, logged in to the admin as `email` (password `STAFF_PASSWORD`). Needs
    DJANGO_ALLOW_ASYNC_UNSAFE: Playwright's sync API runs an asyncio loop in the test's thread."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(f"{live_server.url}/admin/login/?next={next_path}")
            page.fill("#id_username", email)
            page.fill("#id_password", STAFF_PASSWORD)
            page.click("input[type=submit]")
            yield page
        finally:
            browser.close()


def page_fits(page: Any, *, width: int, name: str) -> None:
    """No sideways scrolling of the page, and no change list wider than its own box."""
    scroll_width = page.evaluate("document.documentElement.scrollWidth")
    assert scroll_width <= width, (name, scroll_width)
    overflow = page.evaluate(
        "[...document.querySelectorAll('.results')].map(box => box.scrollWidth - box.clientWidth)"
    )
    assert all(extra <= 0 for extra in overflow), (name, overflow)
