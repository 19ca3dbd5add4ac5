"""How the browser tests wait on a page: before app.js has run there is no test hook.

Issue 10: a predicate that read ``window.sensorlink.state`` before the page had defined
``window.sensorlink`` threw, and Playwright's ``wait_for_function`` failed at once instead of
waiting. Every page predicate goes through ``dashboard_support.wait_page`` now.
"""

from __future__ import annotations

from typing import Any

import pytest

from dashboard_support import element_text, wait_page

pytestmark = pytest.mark.browser

# The hook and an element appear only later, as on a dashboard that is still loading.
LATE_HOOK = """<p id="note">loading</p><script>
setTimeout(() => {
  window.sensorlink = { state: "live", cameras: {} };
  document.body.insertAdjacentHTML("beforeend", '<span data-testid="late">ready</span>');
}, 500);
</script>"""


def test_a_wait_holds_until_the_hook_and_the_element_exist(new_page: Any) -> None:
    page = new_page("about:blank")
    page.set_content(LATE_HOOK)
    wait_page(page, f"s.state === 'live' && {element_text('late')} === 'ready'", timeout=10_000)
    # A part that is not there yet reads as "not yet" too, and a timeout says what the page had.
    with pytest.raises(AssertionError, match=r"waited 0.5 s for .*'state': 'live'"):
        wait_page(page, "s.cameras.cam?.frames > 0", timeout=500)


def test_the_bare_predicate_fails_at_once_on_a_page_without_the_hook(new_page: Any) -> None:
    """What wait_page guards against (the page never defines the hook here)."""
    from playwright.sync_api import Error
    page = new_page("about:blank")
    page.set_content("<p>no hook</p>")
    with pytest.raises(Error, match="Cannot read properties of undefined"):
        page.wait_for_function("() => window.sensorlink.state === 'live'", timeout=10_000)
