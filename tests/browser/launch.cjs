// Starts Debian's Chromium headless for the browser tests, with the flags a closed network needs, and
// collects every console error and page error so a test can assert there were none.
'use strict';
const { chromium } = require('playwright-core');

const EXECUTABLE = process.env.DUALRIG_CHROMIUM || '/usr/bin/chromium';

async function launch() {
  const browser = await chromium.launch({
    executablePath: EXECUTABLE,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  const page = await browser.newPage();
  const errors = [];
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`console: ${message.text()}`);
  });
  page.on('pageerror', (error) => errors.push(`page: ${error.message}`));
  // Playwright gives each launch a fresh, empty profile of its own and removes it on close.
  const close = () => browser.close();
  return { browser, page, errors, close };
}

// Runs `body` and exits 0, or prints the failure and exits 1, so the calling test sees why.
function main(body) {
  body().then(
    () => process.exit(0),
    (error) => {
      console.error(error && error.stack ? error.stack : String(error));
      process.exit(1);
    },
  );
}

module.exports = { launch, main };
