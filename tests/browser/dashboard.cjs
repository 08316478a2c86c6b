// Loads the worker dashboard in headless Chromium, reads its figures, says so in READY_FILE, then waits
// until the page shows a job done, storage used and more chart points than at first (the test runs a
// job and a put meanwhile). Saves a screenshot and prints what it read as one JSON line.
//
//   node dashboard.cjs URL READY_FILE SCREENSHOT
'use strict';
const fs = require('fs');
const { launch, main } = require('./launch.cjs');

const [url, readyFile, screenshot] = process.argv.slice(2);
const DEADLINE_MS = 240000;

// What the page shows now: the raw numbers of the figures and the points of each chart.
function read(page) {
  return page.evaluate(() => {
    const value = (id) => {
      const el = document.getElementById(id);
      return el && el.dataset.value !== undefined ? Number(el.dataset.value) : null;
    };
    // How far the line of `key` rose from its first point to its last, in chart pixels.
    const rise = (id, key) => {
      const line = document.querySelector('#' + id + ' polyline[data-key="' + key + '"]');
      const ys = line.getAttribute('points').trim().split(/\s+/).map((p) => Number(p.split(',')[1]));
      return ys[0] - ys[ys.length - 1];
    };
    const points = (id) => {
      const lines = document.querySelectorAll('#' + id + ' polyline');
      return Array.from(lines, (l) => l.getAttribute('points').trim().split(/\s+/).length);
    };
    return {
      state: document.getElementById('connection-state').textContent,
      jobsDone: value('jobs-done'),
      storeUsed: value('store-used'),
      storeCapacity: value('store-capacity'),
      jobsChart: points('chart-jobs'),
      storageChart: points('chart-storage'),
      earningsChart: points('chart-earnings'),
      jobsRise: rise('chart-jobs', 'jobs_done'),
      storageRise: rise('chart-storage', 'store_used_bytes'),
      jobsText: document.getElementById('jobs-done').textContent,
      storeText: document.getElementById('store-used').textContent,
      benchText: document.getElementById('bench-hash').textContent,
      benchShown: !document.getElementById('bench-figures').hidden,
      problem: document.getElementById('problem').hidden ? null : document.getElementById('problem').textContent,
    };
  });
}

main(async () => {
  const { page, errors, close } = await launch();
  try {
    await page.goto(url, { waitUntil: 'load' });
    await page.waitForFunction(
      () => document.getElementById('jobs-done').dataset.value !== undefined &&
        document.querySelectorAll('#chart-jobs polyline').length > 0,
      null,
      { timeout: 30000 },
    );
    const first = await read(page);
    fs.writeFileSync(readyFile, JSON.stringify(first));
    const started = Date.now();
    let now = first;
    // The history gains a point every few seconds; the page redraws every two.
    while (
      !(now.jobsDone > first.jobsDone &&
        now.storeUsed > first.storeUsed &&
        Math.min(...now.jobsChart) > Math.min(...first.jobsChart) &&
        Math.min(...now.storageChart) > Math.min(...first.storageChart) &&
        now.jobsRise > 0 && now.storageRise > 0)
    ) {
      if (Date.now() - started > DEADLINE_MS) {
        throw new Error('the page never showed the job and the put: first ' + JSON.stringify(first) +
          ', last ' + JSON.stringify(now) + ', errors ' + JSON.stringify(errors));
      }
      await page.waitForTimeout(500);
      now = await read(page);
    }
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(JSON.stringify({ first, last: now, errors }));
  } finally {
    await close();
  }
});
