import { chromium, type Page } from 'playwright-core';

/**
 * Opens a self-contained HTML file in headless Chromium (Debian's /usr/bin/chromium), recording every
 * request that is not for a file: a report that opens offline fetches nothing.
 */
export async function openOffline(
  file: string,
): Promise<{ page: Page; fetched: string[]; close: () => Promise<void> }> {
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
    await page.goto(`file://${file}`);
    return { page, fetched, close: () => browser.close() };
  } catch (e) {
    await browser.close();
    throw e;
  }
}
