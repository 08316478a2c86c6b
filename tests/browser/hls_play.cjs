// Plays an HLS ladder in headless Chromium with hls.js: usage `node hls_play.cjs DIR [SCREENSHOT.png]`, DIR holding
// master.m3u8. It serves DIR and hls.js on 127.0.0.1, lets hls.js load the master playlist, plays, then
// switches to another rendition and plays on. Prints one JSON document: the renditions hls.js lists
// (resolution, codecs, bitrate), the play position before and after the switch, the level switched to;
// exits 1 on any hls.js fatal error, console error or page error.
'use strict';
const fs = require('fs');
const http = require('http');
const path = require('path');
const { launch, main } = require('./launch.cjs');

const TYPES = {
  '.m3u8': 'application/vnd.apple.mpegurl',
  '.ts': 'video/mp2t',
  '.m4s': 'video/iso.segment',
  '.mp4': 'video/mp4',
  '.js': 'text/javascript',
  '.html': 'text/html',
};

const PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>hls</title>
<script src="/hls.js"></script></head><body style="margin:0"><video id="v" muted playsinline></video></body></html>`;

function serve(dir) {
  const hlsJs = require.resolve('hls.js/dist/hls.min.js');
  const server = http.createServer((request, response) => {
    const url = new URL(request.url, 'http://localhost');
    let file;
    if (url.pathname === '/') {
      response.writeHead(200, { 'content-type': 'text/html' });
      response.end(PAGE);
      return;
    } else if (url.pathname === '/favicon.ico') {
      response.writeHead(204);
      response.end();
      return;
    } else if (url.pathname === '/hls.js') {
      file = hlsJs;
    } else {
      file = path.join(dir, path.normalize(decodeURIComponent(url.pathname)).replace(/^([/\\])+/, ''));
      if (!file.startsWith(path.resolve(dir))) file = null;
    }
    if (!file || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      response.writeHead(404);
      response.end();
      return;
    }
    response.writeHead(200, {
      'content-type': TYPES[path.extname(file)] || 'application/octet-stream',
    });
    fs.createReadStream(file).pipe(response);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

main(async () => {
  const dir = path.resolve(process.argv[2]);
  if (!fs.existsSync(path.join(dir, 'master.m3u8'))) throw new Error(`${dir} has no master.m3u8`);
  const server = await serve(dir);
  const { page, errors, close } = await launch();
  try {
    await page.goto(`http://127.0.0.1:${server.address().port}/`);
    const result = await page.evaluate(async () => {
      const video = document.getElementById('v');
      if (!Hls.isSupported()) throw new Error('hls.js says this browser lacks Media Source Extensions');
      // Start on the first listed rendition and never let bandwidth estimates switch on their own.
      const hls = new Hls({ startLevel: 0, capLevelToPlayerSize: false, abrEwmaDefaultEstimate: 1 });
      const fatal = [];
      hls.on(Hls.Events.ERROR, (_, data) => {
        if (data.fatal) fatal.push(`${data.type}: ${data.details}`);
      });
      const parsed = new Promise((resolve) => hls.on(Hls.Events.MANIFEST_PARSED, (_, d) => resolve(d)));
      hls.loadSource('/master.m3u8');
      hls.attachMedia(video);
      const manifest = await parsed;
      const levels = manifest.levels.map((l) => ({
        width: l.width,
        height: l.height,
        bitrate: l.bitrate,
        codecs: l.attrs.CODECS || null,
        videoCodec: l.videoCodec || null,
      }));
      const until = (test, what, ms) =>
        new Promise((resolve, reject) => {
          const started = performance.now();
          const tick = () => {
            if (fatal.length) return reject(new Error(`hls.js: ${fatal.join('; ')}`));
            if (test()) return resolve();
            if (performance.now() - started > ms) {
              return reject(new Error(`${what} did not happen within ${ms} ms (at ${video.currentTime} s)`));
            }
            setTimeout(tick, 50);
          };
          tick();
        });
      await video.play();
      await until(() => video.currentTime > 0.5, 'playback past 0.5 s', 30000);
      const before = video.currentTime;
      const from = hls.currentLevel;
      const to = (from + 1) % levels.length;
      const switched = new Promise((resolve) =>
        hls.on(Hls.Events.LEVEL_SWITCHED, (_, d) => d.level === to && resolve(d.level)),
      );
      hls.currentLevel = to;
      await Promise.race([
        switched,
        until(() => false, `the switch to level ${to}`, 30000),
      ]);
      // The switch counts once the picture on screen is the new rendition's and playback goes on.
      await until(
        () => video.videoHeight === levels[to].height && video.currentTime > before + 1.0,
        `playback 1 s past the switch at ${levels[to].width}x${levels[to].height}`,
        30000,
      );
      return {
        levels,
        from,
        to,
        before,
        after: video.currentTime,
        frame: [video.videoWidth, video.videoHeight],
        fatal,
      };
    });
    if (process.argv[3]) await page.screenshot({ path: process.argv[3] });
    if (errors.length) throw new Error(`browser errors: ${errors.join('; ')}`);
    console.log(JSON.stringify(result));
  } finally {
    await close();
    server.close();
  }
});
