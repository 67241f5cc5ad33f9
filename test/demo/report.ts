import assert from 'node:assert/strict';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

/**
 * Opens a demo report in headless Chromium (offline: any request that is not file: fails the check),
 * checks what a reader sees and saves a screenshot beside it (report.png).
 */
export async function checkReportRenders(
  out: string,
  expect: { charts: number; limits: number; rows: number },
): Promise<{ text: string }> {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    const fetched: string[] = [];
    page.on('request', (req) => {
      if (!req.url().startsWith('file:')) fetched.push(req.url());
    });
    await page.goto(`file://${join(out, 'report.html')}`);
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
    assert.ok(
      await page.locator('[data-trace="before"]').first().isVisible(),
      'the first trace (or its pending box)',
    );
    assert.deepEqual(fetched, [], 'nothing fetched from the network');
    await page.screenshot({ path: join(out, 'report.png'), fullPage: true });
    return { text: await page.locator('body').innerText() };
  } finally {
    await browser.close();
  }
}
