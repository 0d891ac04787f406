// Shared by the end-to-end tests: real processes (relay, hall CLI, bridge) in a temporary folder,
// started and stopped for each test. No dependencies beyond Node 20.
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import net from 'node:net';
import { deflateSync } from 'node:zlib';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = join(ROOT, 'target/debug');
export const OUT = join(ROOT, 'target/test-output');
mkdirSync(OUT, { recursive: true });

export function tempDir(name) {
  return mkdtempSync(join(tmpdir(), `gridwalk-${name}-`));
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

export async function freePort() {
  return new Promise((res, rej) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
    s.on('error', rej);
  });
}

/** Starts a program that prints "listening on http://…" and resolves with its URL. */
export function startListening(cmd, args, opts = {}) {
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
    let out = '';
    let err = '';
    const timer = setTimeout(() => rej(new Error(`${cmd} did not start: ${err}`)), 30000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        res({ child, url: m[1] });
      }
    });
    child.stderr.on('data', (d) => {
      err = (err + d).slice(-4000);
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`${cmd} exited with ${code}: ${err}`));
    });
  });
}

export async function stop(child) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const done = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([done, sleep(5000)]);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

/** The relay on its embedded store, on `port` (0: any free port). */
export async function startRelay(dataDir, port = 0) {
  return startListening(join(BIN, 'gridwalk-relay'), ['--data-dir', dataDir, 'serve', '--listen', `127.0.0.1:${port}`]);
}

export function relayCli(dataDir, ...args) {
  return execFileSync(join(BIN, 'gridwalk-relay'), ['--data-dir', dataDir, ...args], { encoding: 'utf8' }).trim();
}

export function gw(store, ...args) {
  return execFileSync(join(BIN, 'gridwalk'), ['--store', store, ...args], { encoding: 'utf8', maxBuffer: 64 << 20 });
}

/** The demo town's hall staff who sign in on a hall PC, with the PINs the tests give them. */
export const STAFF = [
  { id: 'hall-1', name: '陈国平', pin: '2580' },
  { id: 'hall-2', name: '王丽华', pin: '1357' },
  { id: 'hall-3', name: '张建军', pin: '4680' },
];
/** The demo town's admin, who gives the staff their PINs. */
export const ADMIN = { id: 'admin', name: '系统管理员', pin: '9630' };

/**
 * A hall PC with a small demo town, its rosters published and everything pushed to the relay.
 * Returns the hall's store path.
 */
export function hallWithTown(dir, relayDir, relayUrl) {
  const store = join(dir, 'hall.db');
  gw(store, 'init', '--device', 'hall-pc', '--walker', 'hall-1');
  gw(store, 'demo', '--seed', '5', '--villages', '2', '--households', '80', '--enterprises', '6',
    '--enterprise-grids', '1', '--requests', '40', '--visits', '200');
  gw(store, 'roster', 'publish');
  const code = relayCli(relayDir, 'enroll', '--name', 'hall', '--role', 'hall');
  gw(store, 'join', '--relay', relayUrl, '--code', code, '--name', 'hall');
  gw(store, 'sync', '--resend-all');
  // The relay keeps the staff list: its operator names the admin, who gives the hall's staff
  // their PINs; from then on they sign in on a hall PC (see STAFF).
  relayCli(relayDir, 'staff', 'add-admin', '--person', ADMIN.id, '--name', ADMIN.name, '--pin', ADMIN.pin);
  gw(store, 'sync');
  for (const s of STAFF) {
    gw(store, '--as', ADMIN.id, 'staff', 'set-pin', '--person', s.id, '--pin', s.pin, '--my-pin', ADMIN.pin);
  }
  return store;
}

export function assert(cond, message) {
  if (!cond) throw new Error(`assertion failed: ${message}`);
}

/** A small PNG (a streetlight, roughly), made here so the tests need no image file. */
export function png(width, height) {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (buf) => {
    let c = 0xffffffff;
    for (const b of buf) c = crcTable[(c ^ b) & 0xff] ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type, data) => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type), data]);
    const sum = Buffer.alloc(4);
    sum.writeUInt32BE(crc(body));
    return Buffer.concat([len, body, sum]);
  };
  const rows = [];
  for (let y = 0; y < height; y++) {
    const row = Buffer.alloc(1 + width * 3);
    for (let x = 0; x < width; x++) {
      const lamp = (x - width / 2) ** 2 + (y - height / 3) ** 2 < 60;
      row[1 + x * 3] = lamp ? 250 : 20 + (x % 40);
      row[2 + x * 3] = lamp ? 230 : 30 + (y % 50);
      row[3 + x * 3] = lamp ? 120 : 60;
    }
    rows.push(row);
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', deflateSync(Buffer.concat(rows))),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/**
 * The family the UI ships (ui/src/main.ts imports it from @fontsource-variable/noto-sans-sc), and
 * a sample of the app's own Chinese words.
 */
export const SHIPPED_FONT = 'Noto Sans SC Variable';
export const CJK_SAMPLE = '网格通走访诉求办结评价同步';

/**
 * Runs in the page (Chromium through playwright, WebKitGTK through WebDriver's execute/async):
 * does Chinese text render, and with the font the UI ships? A machine without a CJK font draws
 * every Chinese character as the same empty box while the DOM and the layout look right, so this
 * draws each sample character with the page's own font stack onto a canvas and compares pixels:
 * - every character must leave ink, and no two characters may look alike (empty boxes do);
 * - each must look exactly as it does drawn with the shipped family alone, so the text is
 *   rendered with that font and not with whatever the machine happens to have.
 * Written as one plain function source so both drivers run the very same check.
 */
export const CJK_RENDER_CHECK = `async function cjkRenders(family, sample) {
  const stack = getComputedStyle(document.body).fontFamily;
  await document.fonts.ready;
  await document.fonts.load('48px "' + family + '"', sample);
  const faces = [];
  document.fonts.forEach((f) => {
    if (f.family.replace(/["']/g, '') === family && f.status === 'loaded') faces.push(f.unicodeRange);
  });
  const canvas = document.createElement('canvas');
  canvas.width = 64;
  canvas.height = 64;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  const draw = (font, ch) => {
    ctx.clearRect(0, 0, 64, 64);
    ctx.font = font;
    ctx.fillStyle = '#000';
    ctx.textBaseline = 'top';
    ctx.fillText(ch, 4, 4);
    const px = ctx.getImageData(0, 0, 64, 64).data;
    let ink = 0;
    let sig = '';
    for (let i = 3; i < px.length; i += 4) {
      if (px[i] > 0) ink++;
      sig += px[i] > 127 ? '1' : '0';
    }
    return { ink, sig, width: ctx.measureText(ch).width };
  };
  const chars = Array.from(sample);
  const withPage = chars.map((c) => draw('48px ' + stack, c));
  const withShipped = chars.map((c) => draw('48px "' + family + '"', c));
  return {
    stack,
    fontsCheck: document.fonts.check('48px "' + family + '"', sample),
    loadedFaces: faces.length,
    inked: withPage.filter((g) => g.ink > 40).length,
    distinct: new Set(withPage.map((g) => g.sig)).size,
    sameAsShipped: withPage.filter((g, i) => g.sig === withShipped[i].sig).length,
    widths: withPage.map((g) => Math.round(g.width)),
    count: chars.length,
  };
}`;

/** Throws, saying what a person would see, unless the check above found Chinese rendered right. */
export function assertCjkRenders(r, where) {
  const seen = JSON.stringify(r);
  assert(r.stack.replace(/["']/g, '').startsWith(SHIPPED_FONT), `${where}: the UI's font stack starts with ${SHIPPED_FONT} (${seen})`);
  assert(r.loadedFaces > 0 && r.fontsCheck, `${where}: the shipped font is loaded for the sample (${seen})`);
  assert(r.inked === r.count, `${where}: every Chinese character leaves ink (${seen})`);
  assert(r.distinct === r.count, `${where}: no two Chinese characters look alike, as empty boxes do (${seen})`);
  assert(r.sameAsShipped === r.count, `${where}: Chinese is drawn with the shipped font, not a system one (${seen})`);
}

/**
 * Runs in the page (Chromium and WebKitGTK alike): a photo-like `w` × `h` JPEG as a phone camera
 * writes one (4000 × 3000 weighs several MB), drawn and encoded by the browser itself, returned
 * as base64. Gradients and a few thousand shapes, plus sensor noise, so it compresses like a
 * photo and not like a flat picture. Another `seed` draws another photo.
 */
export const CAMERA_JPEG = `async function cameraJpeg(w, h, seed = 7) {
  const c = new OffscreenCanvas(w, h);
  const g = c.getContext('2d');
  const sky = g.createLinearGradient(0, 0, w, h);
  sky.addColorStop(0, '#9bc4e2');
  sky.addColorStop(1, '#4a3b2c');
  g.fillStyle = sky;
  g.fillRect(0, 0, w, h);
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
  for (let i = 0; i < 6000; i++) {
    g.fillStyle = 'hsl(' + rnd() * 360 + ', ' + (20 + rnd() * 40) + '%, ' + (25 + rnd() * 50) + '%)';
    g.fillRect(rnd() * w, rnd() * h, 8 + rnd() * 160, 8 + rnd() * 160);
  }
  // Sensor noise, as a real camera file has: it is what makes a 12 MP JPEG weigh megabytes.
  const img = g.getImageData(0, 0, w, h);
  const px = img.data;
  for (let i = 0; i < px.length; i += 4) {
    const n = ((rnd() * 48) | 0) - 24;
    px[i] += n;
    px[i + 1] += n;
    px[i + 2] += n;
  }
  g.putImageData(img, 0, 0);
  const blob = await c.convertToBlob({ type: 'image/jpeg', quality: 0.92 });
  const bytes = new Uint8Array(await blob.arrayBuffer());
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}`;

/**
 * Runs in the page: starts writing down, every 50 ms, what the sync screen's bar shows: its
 * fraction, whether a sync runs, the online chip's words and the percentage drawn on the bar.
 * SYNC_LOOKS_END stops it and returns the looks, for assertSyncHonest.
 */
export const SYNC_LOOKS_START = `function syncLooksStart() {
  window.__syncSeen = [];
  const look = () => {
    const bar = document.querySelector('[data-testid="sync-progress"]');
    const chip = document.querySelector('[data-testid="sync-online"]');
    if (bar) window.__syncSeen.push([Number(bar.getAttribute('data-fraction')), bar.getAttribute('data-syncing'), chip?.textContent ?? '', bar.textContent.trim()]);
  };
  window.__syncLook = setInterval(look, 50);
}`;
export const SYNC_LOOKS_END = `function syncLooksEnd() {
  clearInterval(window.__syncLook);
  return window.__syncSeen;
}`;

/**
 * What the sync screen showed while the relay came back was honest: the bar's fraction and the
 * percentage written on it never went back and never passed 100 %, and it never said offline
 * while a sync ran. Returns the fractions seen, first to last.
 */
export function assertSyncHonest(seen) {
  assert(seen.length > 0, 'the sync screen was looked at');
  const fractions = seen.map(([f]) => f);
  assert(fractions.every((f, i) => f >= 0 && f <= 1 && (i === 0 || f >= fractions[i - 1])), `the bar went back or past 100%: ${fractions.join(' ')}`);
  // Older looks (from before the percentage was written down) have no fourth value.
  const shown = seen.filter((s) => s[3] !== undefined).map((s) => Number(/^(\d+)\s*%$/.exec(s[3])?.[1] ?? NaN));
  assert(shown.every((p, i) => p >= 0 && p <= 100 && (i === 0 || p >= shown[i - 1])), `the percentage on the bar went back, past 100 % or was not a percentage: ${seen.map((s) => s[3]).join(' ')}`);
  const offlineWhileSyncing = seen.filter(([, syncing, chip]) => syncing === 'true' && /离线|Offline/.test(chip));
  assert(offlineWhileSyncing.length === 0, `offline shown during a sync: ${JSON.stringify(offlineWhileSyncing.slice(0, 3))}`);
  return fractions;
}

/**
 * Runs in the page: whether every dashboard chart has drawn, at its element's width. ECharts
 * draws onto a canvas; Chart.svelte keeps the instance on its element (`__chart`) and sets
 * `data-drawn` once a drawing has finished.
 */
export const CHARTS_DRAWN = `function chartsDrawn() {
  const divs = [...document.querySelectorAll('[data-testid^="chart-"]')];
  return divs.length > 0 && divs.every((d) => d.__chart && d.getAttribute('data-drawn') === 'true' && Math.abs(d.__chart.getWidth() - d.clientWidth) < 1);
}`;

/**
 * Runs in the page: the texts each dashboard chart drew, as rectangles in the chart's canvas.
 * ECharts draws onto a canvas, so there are no DOM boxes: the chart instance gives its zrender
 * display list, whose text spans belong to zrender Text elements; a Text element's bounding
 * rectangle through its transform is where its label is on screen.
 */
export const CHART_TEXTS = `function chartTexts() {
  const charts = [];
  for (const div of document.querySelectorAll('[data-testid^="chart-"]')) {
    const id = div.getAttribute('data-testid');
    const chart = div.__chart;
    if (!chart) {
      charts.push({ id, texts: [], missing: true });
      continue;
    }
    const zr = chart.getZr();
    const owners = new Set();
    for (const d of zr.storage.getDisplayList(true)) {
      const s = d.style && d.style.text;
      if (s === undefined || s === null || !String(s).trim() || d.invisible) continue;
      owners.add(d.parent && d.parent.type === 'text' ? d.parent : d);
    }
    const texts = [];
    for (const el of owners) {
      const s = String((el.style && el.style.text) ?? '');
      if (!s.trim() || el.invisible || el.ignore || (el.style && el.style.opacity === 0)) continue;
      const r = el.getBoundingRect().clone();
      if (el.transform) r.applyTransform(el.transform);
      texts.push({ text: s, x: r.x, y: r.y, w: r.width, h: r.height });
    }
    charts.push({ id, width: zr.getWidth(), height: zr.getHeight(), texts });
  }
  return charts;
}`;

/** Two rectangles share more than a hair (half a pixel each way). */
export function intersects(a, b) {
  const w = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
  return w > 0.5 && h > 0.5;
}

/**
 * What is wrong with the charts CHART_TEXTS found, in words: a chart without its instance or
 * with almost nothing drawn, a text cut off at the chart's edge, two texts on top of each other.
 */
export function chartLabelProblems(charts) {
  const problems = [];
  for (const c of charts) {
    if (c.missing) {
      problems.push(`${c.id}: no chart instance on the element`);
      continue;
    }
    if (c.texts.length < 3) problems.push(`${c.id}: only ${c.texts.length} texts drawn`);
    for (let i = 0; i < c.texts.length; i++) {
      const a = c.texts[i];
      if (a.x < -1 || a.y < -1 || a.x + a.w > c.width + 1 || a.y + a.h > c.height + 1) {
        problems.push(`${c.id}: "${a.text}" is cut off at the edge (${Math.round(a.x)},${Math.round(a.y)} ${Math.round(a.w)}×${Math.round(a.h)} in ${c.width}×${c.height})`);
      }
      for (let j = i + 1; j < c.texts.length; j++) {
        const b = c.texts[j];
        if (intersects(a, b)) problems.push(`${c.id}: "${a.text}" overlaps "${b.text}"`);
      }
    }
  }
  return problems;
}
