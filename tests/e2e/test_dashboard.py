"""The live dashboard in a real headless Chromium: a deliberation started during the test shows up live."""

import os
import re
import shutil

import pytest

from contracts.events import Role
from tests.e2e.flows import approval_for, approve, result_of

pytestmark = pytest.mark.e2e

CHROMIUM = os.environ.get("FLEET_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags, Chromium keeps calling Google's hosts, which this machine refuses.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
async def page():
    if not shutil.which(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM}: `./dev test` installs Debian's chromium, or set FLEET_CHROMIUM")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield await browser.new_page()
        finally:
            await browser.close()


async def test_a_deliberation_started_during_the_test_appears_live_and_opens_to_its_result(js, mesh, page):
    from playwright.async_api import expect

    _, endpoints = mesh
    await page.goto(endpoints["dashboard_url"])
    await expect(page.locator("#connection")).to_have_text("live")
    await expect(page.locator("#nats")).to_have_text("connected")
    await expect(page.locator("#councils [data-council='DEV']")).to_be_visible()
    await expect(page.locator("#consumers")).to_contain_text("agents-turn-requests")
    await expect(page.locator("#dead-letters")).not_to_have_text("unavailable")

    deliberation = await approve(js, approval_for(Role.QA))
    row = page.locator(f"[data-deliberation-id='{deliberation}']").first
    await expect(row).to_be_visible(timeout=30_000)
    await expect(row).to_contain_text("QA")
    await row.get_by_role("link").click()
    await expect(page.locator("#detail-title")).to_contain_text("Add login throttling")
    await expect(page.locator("#detail-phase")).to_have_text(
        re.compile("propose|critique|revise|judge|select"), timeout=30_000)

    result = await result_of(js, deliberation)
    await expect(page.locator("#detail-status")).to_have_text("COMPLETED", timeout=30_000)
    await expect(page.locator("#detail-winner")).to_have_text(result.winner.agent_id)
    await expect(page.locator("#detail-rationale")).to_have_text(result.rationale.strip() or result.rationale)
    await page.goto(endpoints["dashboard_url"])
    await expect(page.locator(f"#results [data-deliberation-id='{deliberation}']")).to_contain_text(
        result.winner.agent_id)
    await expect(page.locator("#llm")).to_contain_text("QA")
