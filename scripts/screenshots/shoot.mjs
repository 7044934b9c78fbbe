// Opens the dev server's pages in headless Chromium and saves screenshots: the event list, a
// FAILED event's page, the same page after a click on its Replay button (the event processed
// again), and a quarantined event's page. Run by ./take, which starts the server first.
//
//   node shoot.mjs <admin URL> <folder for the PNGs> [chromium executable]
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [admin, out, executablePath = '/usr/bin/chromium'] = process.argv.slice(2);
if (!admin || !out) {
  console.error('usage: node shoot.mjs <admin URL> <folder> [chromium]');
  process.exit(2);
}

// Playwright gives Chromium a fresh, empty profile of its own (its --user-data-dir).
const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 760 } });
  const shot = async (name) => {
    const path = join(out, name);
    await page.screenshot({ path });
    console.log(`saved ${path}`);
  };

  // The list, newest first, with its stats strip.
  await page.goto(`${admin}/events`);
  await page.waitForSelector('table.events');
  await shot('events.png');

  // A failed event: found through the status filter, opened from the list.
  await page.goto(`${admin}/events?status=FAILED`);
  await page.locator('table.events tbody tr a').first().click();
  await page.waitForSelector('h1 .s-failed');
  await shot('failed.png');

  // The Replay button, clicked: back on the same page with what happened, followed live
  // until the event is processed again.
  await page.getByRole('button', { name: 'Replay' }).click();
  await page.waitForSelector('.flash');
  await page.waitForSelector('h1 .s-processed', { timeout: 20000 });
  await shot('replayed.png');

  // A quarantined event: the raw body as it came, and the Release button.
  await page.goto(`${admin}/events?status=QUARANTINED`);
  await page.locator('table.events tbody tr a').first().click();
  await page.waitForSelector('h1 .s-quarantined');
  await shot('quarantined.png');
} finally {
  await browser.close();
}
