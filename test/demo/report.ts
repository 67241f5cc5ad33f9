import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openOffline } from '../helpers/browser.js';

/**
 * Opens a demo report in headless Chromium (offline: any request that is not file: fails the check),
 * checks what a reader sees and saves a screenshot beside it (report.png).
 */
export async function checkReportRenders(
  out: string,
  expect: { charts: number; limits: number; rows: number; traces: string[] },
): Promise<{ text: string }> {
  const { page, fetched, close } = await openOffline(join(out, 'report.html'));
  try {
    const charts = await page.locator('svg.chart[data-chart]').all();
    assert.equal(charts.length, expect.charts, 'the quantify charts');
    for (const c of charts) {
      await c.scrollIntoViewIfNeeded();
      assert.ok(await c.isVisible());
      const box = await c.boundingBox();
      assert.ok(box && box.width > 400 && box.height > 100, 'the chart has a size');
      const bars = await c.locator('rect.bar').all();
      assert.ok(bars.length >= 2, 'bars drawn');
      for (const b of bars) assert.ok(((await b.boundingBox())?.width ?? 0) > 0);
    }
    assert.equal(await page.locator('.limit').count(), expect.limits, 'a section per limit');
    // The quantify table: the first table after its heading has a row per line of the talk's table.
    const rows = await page
      .locator('h2:has-text("3. Quantify") ~ table.summary')
      .first()
      .locator('tbody tr')
      .count();
    assert.equal(rows, expect.rows);
    // Each trace drawn as a diagram: a hop per circle, with the time of each.
    for (const id of expect.traces) {
      const svg = page.locator(`svg.trace[data-trace="${id}"]`);
      await svg.scrollIntoViewIfNeeded();
      assert.ok(await svg.isVisible(), `the trace "${id}" is drawn`);
      assert.ok((await svg.locator('circle').count()) >= 4, `trace "${id}": its hops`);
      assert.match(await svg.innerHTML(), /µs/, `trace "${id}": per-hop times`);
    }
    assert.deepEqual(fetched, [], 'nothing fetched from the network');
    await page.screenshot({ path: join(out, 'report.png'), fullPage: true });
    return { text: await page.locator('body').innerText() };
  } finally {
    await close();
  }
}
