// The same app in WebKitGTK (what the Linux desktop app runs on): MiniBrowser driven through
// WebKitWebDriver, plain W3C WebDriver over HTTP, no client library. Against an enrolled bridge:
//   xvfb-run -a WebKitWebDriver --port=4455 &   # Debian: webkit2gtk-driver, xvfb
//   BASE=http://127.0.0.1:8471 node e2e/webkit.mjs
import { mkdirSync, writeFileSync } from 'node:fs';
const WD = process.env.WD ?? 'http://127.0.0.1:4455';
const SHOTS = process.env.SHOTS ?? 'test-output';
mkdirSync(SHOTS, { recursive: true });
const BASE = process.env.BASE;
async function wd(method, path, body) {
  const r = await fetch(WD + path, { method, headers: { 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });
  const j = await r.json();
  if (!r.ok) throw new Error(path + ': ' + JSON.stringify(j.value));
  return j.value;
}
const s = await wd('POST', '/session', { capabilities: { alwaysMatch: { 'webkitgtk:browserOptions': { binary: process.env.MINIBROWSER ?? '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser', args: ['--automation'] } } } });
const sid = s.sessionId;
const S = (p) => `/session/${sid}${p}`;
const find = async (tid) => Object.values(await wd('POST', S('/element'), { using: 'css selector', value: `[data-testid="${tid}"]` }))[0];
const waitFor = async (tid, ms = 10000) => {
  const end = Date.now() + ms;
  for (;;) {
    try { return await find(tid); } catch (e) { if (Date.now() > end) throw e; await new Promise((r) => setTimeout(r, 200)); }
  }
};
const click = async (tid) => wd('POST', S(`/element/${await waitFor(tid)}/click`), {});
const shot = async (name) => writeFileSync(`${SHOTS}/webkit-${name}.png`, Buffer.from(await wd('GET', S('/screenshot')), 'base64'));
try {
  await wd('POST', S('/window/rect'), { width: 390, height: 844 });
  await wd('POST', S('/url'), { url: BASE + '#/grids' });
  await waitFor('app-shell');
  await click('grid-item');
  await waitFor('place-item');
  await shot('places');
  await click('tab-requests');
  await waitFor('request-item');
  await click('request-item');
  await waitFor('request-timeline');
  await shot('detail');
  await click('tab-sync');
  await waitFor('sync-progress');
  const frac = await wd('GET', S(`/element/${await find('sync-progress')}/attribute/data-fraction`));
  console.log('webkit ok; fraction', frac);
  await shot('sync');
  const logs = await wd('POST', S('/execute/sync'), { script: 'return document.title + " | " + navigator.userAgent', args: [] });
  console.log(logs);
} finally {
  await wd('DELETE', S(''));
}
