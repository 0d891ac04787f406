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
