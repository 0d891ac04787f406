// The real app in a real window: the Tauri binary (target/debug/gridwalk-app, with ui/dist
// embedded) driven through tauri-driver and WebKitWebDriver under a virtual X display, against a
// real relay process. It walks the loop the Chromium tests walk (ui/e2e/walker.mjs and hall.mjs),
// in the WebKitGTK window a hall PC or a Linux laptop runs:
//
// 1. A walker's phone (360 × 740, then 390 × 844) enrols by the hall's QR code: the relay prints
//    it, a photo of it (a PNG made here) is chosen on the enrol screen and fills in the address
//    and the code.
// 2. She raises a request with a 12-megapixel camera photo: the request is on screen at once, the
//    photo shows as processing (处理中) and turns into its thumbnail in the background.
// 3. The relay goes away; she records another request with a photo; the sync screen says what
//    waits. The relay comes back on the same data and port, over a slow link (a proxy here), and
//    the progress the sync screen shows while it syncs never goes back, never passes 100 % and
//    never says offline.
// 4. The hall accepts, assigns (an office, a deadline) and resolves her request through its CLI;
//    on her phone she reports back on the doorstep and records the resident's rating, and the hall
//    receives both.
// 5. A second window, with a data folder of its own, is a hall PC: its staff sign in; the monthly
//    list (驻网办事清单) shows a request carried over from last month, marked; the dashboard's
//    chart labels do not overlap (boxes from each chart's display list).
// On every screen: Chinese renders with the shipped font, and the visible text holds no uuid,
// device id or office id. Screenshots: target/test-output/window-*.png
//
// Run: node tests/e2e/window.mjs   (scripts/test.sh does, after building the workspace)
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import net from 'node:net';
import { join } from 'node:path';
import {
  BIN, CAMERA_JPEG, CHARTS_DRAWN, CHART_TEXTS, CJK_RENDER_CHECK, CJK_SAMPLE, OUT, SHIPPED_FONT, STAFF, SYNC_LOOKS_END, SYNC_LOOKS_START, assert, assertCjkRenders,
  assertSyncHonest, chartLabelProblems, freePort, gw, hallWithTown, relayCli, sleep, startRelay, stop, tempDir,
} from './lib.mjs';
import { enrolCodeWithQr, qrPng } from '../../ui/e2e/qr.mjs';
import { machineIdsIn } from '../../ui/e2e/visible.mjs';

const APP = join(BIN, 'gridwalk-app');
const DRIVER = [join(homedir(), '.cargo/bin/tauri-driver'), 'tauri-driver'].find((p) => p === 'tauri-driver' || existsSync(p));
const GRID = 'v01-g01';
/** The walker's PIN for her phone, chosen right after enrolment (issue 14). */
const PIN = '2580';
const tid = (id) => `[data-testid="${id}"]`;

async function startXvfb() {
  for (let n = 90 + Math.floor(Math.random() * 100); ; n++) {
    const child = spawn('Xvfb', [`:${n}`, '-screen', '0', '1280x1024x24', '-nolisten', 'tcp'], { stdio: 'ignore' });
    await sleep(700);
    if (child.exitCode === null) return { child, display: `:${n}` };
  }
}

/** A minimal W3C WebDriver client over fetch. */
class WebDriver {
  constructor(base) {
    this.base = base;
  }
  async cmd(method, path, body) {
    const r = await fetch(`${this.base}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(json).slice(0, 500)}`);
    return json.value;
  }
  async start(capabilities) {
    const v = await this.cmd('POST', '/session', { capabilities: { alwaysMatch: capabilities } });
    this.session = `/session/${v.sessionId}`;
    // Drawing and encoding a 12 MP photo in the page takes longer than the default 30 s allows
    // on a busy machine.
    await this.cmd('POST', `${this.session}/timeouts`, { script: 120000 });
  }
  async find(css, timeoutMs = 20000) {
    const until = Date.now() + timeoutMs;
    for (;;) {
      try {
        const v = await this.cmd('POST', `${this.session}/element`, { using: 'css selector', value: css });
        return Object.values(v)[0];
      } catch (e) {
        if (Date.now() > until) throw new Error(`no element ${css}: ${e.message}`);
        await sleep(200);
      }
    }
  }
  async count(css) {
    return (await this.cmd('POST', `${this.session}/elements`, { using: 'css selector', value: css })).length;
  }
  async click(css) {
    const id = await this.find(css);
    try {
      await this.cmd('POST', `${this.session}/element/${id}/click`, {});
    } catch (e) {
      // A passing toast or the fixed bar can sit over the element for a moment; a click from
      // the page itself reaches it all the same, as a tap would once the toast is gone.
      if (!String(e.message).includes('intercepted')) throw e;
      await this.exec('const el = document.querySelector(arguments[0]); el.scrollIntoView({block: "center"}); el.click();', css);
    }
  }
  async type(css, text) {
    const id = await this.find(css);
    await this.cmd('POST', `${this.session}/element/${id}/clear`, {});
    await this.cmd('POST', `${this.session}/element/${id}/value`, { text });
  }
  /**
   * Chooses a file in a file input, as a person picking it in the file chooser does: WebDriver's
   * "element send keys" with the file's path. It works on a visually hidden input too (the enrol
   * screen's sits inside its label), since file inputs are not checked for being interactable.
   */
  async upload(css, path) {
    const id = await this.find(css);
    await this.cmd('POST', `${this.session}/element/${id}/value`, { text: path });
  }
  async attr(css, name) {
    const id = await this.find(css);
    return this.cmd('GET', `${this.session}/element/${id}/attribute/${name}`);
  }
  /** A property (a field's `value` is one: the attribute holds only what the page was built with). */
  async prop(css, name) {
    const id = await this.find(css);
    return this.cmd('GET', `${this.session}/element/${id}/property/${name}`);
  }
  async text(css) {
    const id = await this.find(css);
    return (await this.cmd('GET', `${this.session}/element/${id}/text`)).trim();
  }
  /** Runs a script body in the page (`arguments` are `args`) and returns what it returns. */
  async exec(script, ...args) {
    return this.cmd('POST', `${this.session}/execute/sync`, { script, args });
  }
  /** Runs an async function source in the page and returns what it resolves to. */
  async run(fnSource, ...args) {
    const v = await this.cmd('POST', `${this.session}/execute/async`, {
      script: `const done = arguments[arguments.length - 1];
        (${fnSource})(...Array.from(arguments).slice(0, -1)).then(done, (e) => done({ error: String(e) }));`,
      args,
    });
    if (v && v.error) throw new Error(v.error);
    return v;
  }
  async setSize(width, height) {
    await this.cmd('POST', `${this.session}/window/rect`, { width, height });
    const inner = await this.exec('return [window.innerWidth, window.innerHeight];');
    assert(inner[0] === width, `the window is ${width} px wide: ${inner}`);
  }
  /** Scrolls the element into the middle of the window, as a person does to look at it. */
  async scrollTo(css) {
    await this.find(css);
    await this.exec('document.querySelector(arguments[0]).scrollIntoView({ block: "center" });', css);
    await sleep(150);
  }
  /** Waits for a passing message (a toast) to go, so that a screenshot shows the screen under it. */
  async noToast() {
    await this.waitFor('the toast to go', async () => (await this.count('[data-testid="toast"]')) === 0, 10000);
  }
  /** The page scrolls sideways: something is wider than the window. */
  async assertFitsWidth(what) {
    const [scrollWidth, width] = await this.exec('return [document.documentElement.scrollWidth, window.innerWidth];');
    assert(scrollWidth <= width, `${what} fits ${width} px without sideways scrolling: ${scrollWidth}`);
  }
  async screenshot(file) {
    const b64 = await this.cmd('GET', `${this.session}/screenshot`);
    writeFileSync(join(OUT, file), Buffer.from(b64, 'base64'));
  }
  async waitFor(what, fn, timeoutMs = 60000) {
    const until = Date.now() + timeoutMs;
    for (;;) {
      try {
        if (await fn()) return;
      } catch {
        // not there yet
      }
      if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
      await sleep(300);
    }
  }
  /**
   * The visible text of the page (`innerText` of the body: what is drawn, not hidden elements or
   * attributes) holds no uuid, device id or office id, as ui/e2e/visible.mjs checks in Chromium.
   * Names come from lists a screen loads beside its own data, so the screen gets `settleMs` to
   * finish loading; an id still shown after that fails.
   */
  async assertNoMachineIds(what, settleMs = 3000) {
    const start = Date.now();
    for (;;) {
      const found = machineIdsIn(await this.exec('return document.body.innerText;'));
      if (!found.length) break;
      if (Date.now() - start > settleMs) {
        throw new Error(`assertion failed: ${what} shows machine ids a person cannot read:\n  ${found.slice(0, 12).join('\n  ')}`);
      }
      await sleep(200);
    }
    console.log(`${what}: no machine ids on screen`);
  }
  async quit() {
    if (this.session) await this.cmd('DELETE', this.session).catch(() => {});
    this.session = null;
  }
}

/**
 * The app in a window of its own, with `dataDir` as its data folder: tauri-driver (and the
 * WebKitWebDriver and app it starts) in a process group of its own, so that ending the group ends
 * them all. The app reads GRIDWALK_DATA_DIR from the environment tauri-driver passes on, so each
 * device needs its own driver.
 */
async function openApp(display, dataDir) {
  const port = await freePort();
  const nativePort = await freePort();
  const driver = spawn(DRIVER, ['--port', String(port), '--native-port', String(nativePort)], {
    env: { ...process.env, DISPLAY: display, GRIDWALK_DATA_DIR: dataDir },
    stdio: 'ignore',
    detached: true,
  });
  const wd = new WebDriver(`http://127.0.0.1:${port}`);
  await wd.waitFor('tauri-driver', async () => (await fetch(`http://127.0.0.1:${port}/status`)).ok, 20000);
  await wd.start({ 'tauri:options': { application: APP } });
  return { driver, wd };
}

async function closeApp(app) {
  if (!app) return;
  await app.wd.quit();
  try {
    process.kill(-app.driver.pid, 'SIGTERM');
  } catch {
    // already gone
  }
}

/**
 * The village's mobile network between the walker's phone and the hall's relay: a TCP proxy the
 * phone reaches the relay through. With `bytesPerSecond` set it carries that much a second each
 * way, as a weak signal does, so a sync of a photo takes seconds and the sync screen can be
 * watched while it runs; with null it is as fast as the loopback. A relay that is down refuses
 * the proxy, and the proxy then drops the phone's connection.
 */
async function startVillageLink(relayPort) {
  const link = { bytesPerSecond: null, sockets: new Set() };
  const carry = (from, to) => {
    from.on('data', (chunk) => {
      from.pause();
      let at = 0;
      const next = () => {
        if (to.destroyed) return;
        const rate = link.bytesPerSecond;
        const slice = rate ? chunk.subarray(at, at + 8192) : chunk.subarray(at);
        at += slice.length;
        to.write(slice);
        const wait = rate ? (slice.length / rate) * 1000 : 0;
        setTimeout(at < chunk.length ? next : () => from.resume(), wait);
      };
      next();
    });
    from.on('end', () => to.end());
  };
  const server = net.createServer((phone) => {
    const relay = net.connect(relayPort, '127.0.0.1');
    for (const s of [phone, relay]) {
      link.sockets.add(s);
      s.on('error', () => {
        phone.destroy();
        relay.destroy();
      });
      s.on('close', () => link.sockets.delete(s));
    }
    carry(phone, relay);
    carry(relay, phone);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  link.url = `http://127.0.0.1:${server.address().port}`;
  link.close = () => {
    for (const s of link.sockets) s.destroy();
    return new Promise((r) => server.close(r));
  };
  return link;
}

/** Width × height of a baseline or progressive JPEG, from its frame header. */
function jpegSize(buf) {
  for (let i = 2; i + 9 < buf.length; ) {
    if (buf[i] !== 0xff) return null;
    const marker = buf[i + 1];
    if (marker >= 0xc0 && marker <= 0xc2) return [buf.readUInt16BE(i + 7), buf.readUInt16BE(i + 5)];
    i += 2 + buf.readUInt16BE(i + 2);
  }
  return null;
}

/** A moment `days` ago, as the hall CLI's --now takes it. */
function daysAgo(days) {
  return new Date(Date.now() - days * 86400000).toISOString();
}

/** A calendar day, `days` from today in China Standard Time, as the CLI's --deadline takes it. */
function dayFromToday(days) {
  return new Date(Date.now() + 8 * 3600000 + days * 86400000).toISOString().slice(0, 10);
}

async function main() {
  assert(existsSync(APP), `${APP} is missing: build the workspace first`);
  assert(DRIVER, 'tauri-driver is missing: bash scripts/setup.sh ui-tests installs it');
  const began = Date.now();
  const dir = tempDir('window');
  const relayDir = join(dir, 'relay');
  let relay = await startRelay(relayDir);
  const relayPort = new URL(relay.url).port;
  const village = await startVillageLink(relayPort);
  let xvfb;
  let app;
  try {
    const hall = hallWithTown(dir, relayDir, relay.url);
    // A request raised at the hall forty days ago, accepted and assigned then, and still open:
    // this month's list carries it over from an earlier month.
    const carriedDescription = `窗口测试：往月未办结的积水 ${Date.now() % 100000}`;
    const carriedId = JSON.parse(gw(hall, '--json', '--now', daysAgo(40), 'request', 'raise', '--grid', GRID, '--category', 'environment',
      '--description', carriedDescription, '--address', '马社村2组路口', '--reporter', '李阿姨')).id;
    const offices = JSON.parse(gw(hall, '--json', 'departments'));
    gw(hall, '--now', daysAgo(39), 'request', 'accept', carriedId);
    gw(hall, '--now', daysAgo(39), 'request', 'assign', carriedId, '--department', offices[0].id, '--deadline', dayFromToday(20), '--level', 'village');
    gw(hall, 'sync');

    xvfb = await startXvfb();
    app = await openApp(xvfb.display, join(dir, 'phone'));
    let wd = app.wd;
    // A small phone for the enrol screen, then the phone size of the Chromium walk; the window
    // is resizable down to 360 px.
    await wd.setSize(360, 740);

    // 1. Enrol by the hall's QR code. WebKitGTK draws Chinese with the font the app ships (this
    //    machine may have no CJK font).
    await wd.find(tid('screen-enroll'), 30000);
    assertCjkRenders(await wd.run(CJK_RENDER_CHECK, SHIPPED_FONT, CJK_SAMPLE), 'WebKitGTK window, enrol screen');
    await wd.screenshot('window-01-enroll-360.png');
    await wd.assertNoMachineIds('window: enrol screen');
    // The QR code holds the address phones reach the relay at: through the village's network.
    const { code, link } = enrolCodeWithQr(relayDir, village.url, '--name', '窗口测试手机', '--grids', GRID, '--walker', 'w001');
    const qrFile = join(dir, 'enrol-qr.png');
    writeFileSync(qrFile, await qrPng(link));
    await wd.upload(tid('enroll-scan-file'), qrFile);
    await wd.find(tid('enroll-scan-filled'), 15000);
    assert((await wd.prop(tid('enroll-relay'), 'value')) === village.url, 'the photo of the QR code fills in the relay address');
    assert((await wd.prop(tid('enroll-code'), 'value')) === code, 'the photo of the QR code fills in the code');
    await wd.assertFitsWidth('the enrol screen at 360 × 740');
    await wd.screenshot('window-02-enroll-qr-read-360.png');
    await wd.assertNoMachineIds('window: enrol screen, QR code read');
    console.log('window: enrolment QR code read from a photo of it (address and code filled)');
    await wd.click(tid('enroll-submit'));
    // A walker's phone asks for the PIN it will open with (issue 14), in the real window too.
    await wd.find(tid('setpin-screen'), 30000);
    await wd.assertNoMachineIds('window: choose a PIN');
    await wd.type(tid('setpin-pin'), PIN);
    await wd.type(tid('setpin-again'), PIN);
    await wd.screenshot('window-03-choose-pin-360.png');
    await wd.click(tid('setpin-submit'));
    await wd.find(tid('app-shell'), 30000);
    await wd.setSize(390, 844);
    // The roster arrives with the first sync: her grid is listed.
    await wd.waitFor('her grid', async () => (await wd.attr(tid('grid-item'), 'data-grid-id')) === GRID);
    await wd.noToast();
    await wd.screenshot('window-04-grids.png');
    await wd.assertNoMachineIds('window: grids');

    // 2. A request with a 12-megapixel camera photo, drawn and encoded by WebKitGTK itself.
    const made = Date.now();
    const camera = Buffer.from(await wd.run(CAMERA_JPEG, 4000, 3000), 'base64');
    const size = jpegSize(camera);
    assert(size && size[0] * size[1] >= 12e6, `a 12 MP photo: ${size}`);
    const photoFile = join(dir, 'IMG_20261205_093102.jpg');
    writeFileSync(photoFile, camera);
    console.log(`window: a ${size.join(' × ')} JPEG of ${(camera.length / 1e6).toFixed(1)} MB made in ${Date.now() - made} ms`);
    await wd.click(tid('tab-requests'));
    await wd.click(tid('request-new'));
    await wd.click(`${tid('request-category')} option[value=streetlight]`);
    const description = `窗口测试：村口路灯不亮 ${Date.now()}`;
    await wd.type(tid('request-description'), description);
    await wd.type(tid('request-address'), '马社村口');
    await wd.upload(tid('request-photo-input'), photoFile);
    await wd.find(tid('request-photo-list'), 15000);
    await wd.scrollTo(tid('request-photo-list'));
    await wd.screenshot('window-05-request-form.png');
    await wd.assertNoMachineIds('window: request form');
    const tapped = Date.now();
    await wd.click(tid('request-submit'));
    await wd.find(tid('screen-request'), 30000);
    await wd.find(tid('request-timeline'), 10000);
    const tapToScreen = Date.now() - tapped;
    // The photo shows as processing first (unless the worker was quicker than the screen), then
    // as its thumbnail, with no action of the walker's.
    const firstLook = await wd.attr(`${tid('waiting-photo')}, ${tid('photo-thumb')}`, 'data-testid');
    if (firstLook === 'waiting-photo') {
      const says = await wd.text(tid('waiting-photo-state'));
      assert(says.includes('处理中'), `the waiting photo says it is processing: ${says}`);
      await wd.screenshot('window-06-request-photo-processing.png');
    }
    await wd.find(`${tid('photo-thumb')}[data-state="ok"]`, 60000);
    const tapToThumb = Date.now() - tapped;
    assert((await wd.count(tid('waiting-photo'))) === 0, 'no photo is left waiting');
    console.log(`window: 12 MP photo (${(camera.length / 1e6).toFixed(1)} MB): tap → request on screen ${tapToScreen} ms (first look: ${firstLook}); tap → thumbnail ${tapToThumb} ms`);
    assert(tapToScreen < 5000, `the request is on screen at once, not after the photo: ${tapToScreen} ms`);
    const requestId = await wd.attr(tid('screen-request'), 'data-request-id');
    assert(requestId, 'the request detail is open');
    await wd.screenshot('window-07-request-detail.png');
    await wd.assertNoMachineIds('window: request detail');

    // The app syncs by itself. The pending count alone cannot tell: it may still read 0 from
    // before the request was saved. The relay's receipt time on the timeline can: the detail
    // screen loads again after each sync.
    await wd.waitFor(
      'the relay receipt on the timeline',
      async () => (await wd.attr(tid('timeline-relay-time'), 'data-received')) === 'yes',
      60000,
    );
    await wd.waitFor('nothing left to go up', async () => (await wd.attr(tid('pending-count'), 'data-count')) === '0');
    // On the relay, photo and all: the hall pulls it from there.
    gw(hall, 'sync');
    const onRelay = JSON.parse(gw(hall, '--json', 'request', 'show', requestId));
    assert(onRelay.body.description === description, 'the request raised in the window is on the relay');
    const hallPhotos = JSON.parse(gw(hall, '--json', 'photo', 'list', requestId)).photos;
    assert(hallPhotos.length === 1, `the request's photo reached the hall: ${JSON.stringify(hallPhotos)}`);

    // 3. The relay goes away; the walker works on, and the sync screen says what waits.
    await stop(relay.child);
    await wd.waitFor('the offline mark', async () => (await wd.attr(tid('online-mark'), 'data-online')) === 'false', 30000);
    await wd.click(tid('tab-requests'));
    await wd.click(tid('request-new'));
    await wd.click(`${tid('request-category')} option[value=environment]`);
    const offlineDescription = `窗口测试：垃圾桶满溢（离线） ${Date.now()}`;
    await wd.type(tid('request-description'), offlineDescription);
    await wd.type(tid('request-address'), '马社村3组');
    // Another camera photo (the same one would be on the relay already, under the same hash).
    const offlinePhoto = join(dir, 'IMG_20261205_101544.jpg');
    writeFileSync(offlinePhoto, Buffer.from(await wd.run(CAMERA_JPEG, 4000, 3000, 11), 'base64'));
    await wd.upload(tid('request-photo-input'), offlinePhoto);
    await wd.find(tid('request-photo-list'), 15000);
    await wd.click(tid('request-submit'));
    await wd.find(tid('screen-request'), 30000);
    await wd.find(tid('request-timeline'), 10000);
    const offlineId = await wd.attr(tid('screen-request'), 'data-request-id');
    const offlineFirstLook = await wd.attr(`${tid('waiting-photo')}, ${tid('photo-thumb')}`, 'data-testid');
    if (offlineFirstLook === 'waiting-photo') {
      const says = await wd.text(tid('waiting-photo-state'));
      assert(says.includes('处理中'), `offline, the waiting photo says it is processing: ${says}`);
    }
    await wd.screenshot('window-08-offline-request.png');
    await wd.assertNoMachineIds('window: request detail, offline');
    // Offline no sync reloads the screen: it must keep looking by itself until the photo is
    // processed (regression: it looked once, and the photo read 处理中… for good).
    await wd.waitFor('the offline photo turning into its thumbnail on the request screen', async () => (await wd.count(tid('photo-thumb'))) === 1 && (await wd.count(tid('waiting-photo'))) === 0, 60000);
    // The top bar polls the status every few seconds; the new record is soon counted as waiting.
    await wd.waitFor('the offline record counted as waiting', async () => Number(await wd.attr(tid('pending-count'), 'data-count')) >= 1, 15000);
    await wd.click(tid('tab-sync'));
    await wd.find(tid('screen-sync'));
    // The sync screen says a photo is being processed while it is, and then counts it among what
    // waits to go up: the relay's return then starts one sync that carries record and photo.
    const processingShown = (await wd.count(tid('sync-processing-photos'))) > 0;
    await wd.waitFor(
      'the offline photo processed and waiting to go up',
      async () => (await wd.count(tid('sync-processing-photos'))) === 0 && (await wd.text(tid('sync-pending-photos'))) === '1',
      60000,
    );
    // Honest while offline: it says offline, names what waits, and the bar shows 0 % for it,
    // not the last sync's 100 %.
    const offlineLook = {
      chip: await wd.text(tid('sync-online')),
      heading: await wd.text(tid('sync-heading')),
      fraction: await wd.attr(tid('sync-progress'), 'data-fraction'),
      shown: await wd.text(tid('sync-progress')),
      waitingDocs: Number(await wd.text(tid('sync-pending-docs'))),
      waitingPhotos: Number(await wd.text(tid('sync-pending-photos'))),
    };
    assert(offlineLook.chip === '离线', `the sync screen says offline: ${JSON.stringify(offlineLook)}`);
    assert(offlineLook.heading === '有内容等待上传', `the sync screen says something waits: ${JSON.stringify(offlineLook)}`);
    assert(offlineLook.fraction === '0' && offlineLook.shown === '0%', `with records waiting offline the bar shows 0 %, not the last sync's: ${JSON.stringify(offlineLook)}`);
    assert(offlineLook.waitingDocs >= 1 && offlineLook.waitingPhotos === 1, `the waiting record and photo are counted: ${JSON.stringify(offlineLook)}`);
    console.log(`window: offline, the request saved with its photo (first look: ${offlineFirstLook}); the sync screen ${processingShown ? 'showed the photo being processed, then ' : ''}counts ${offlineLook.waitingDocs} records and ${offlineLook.waitingPhotos} photo waiting, bar at ${offlineLook.shown}`);
    await wd.screenshot('window-09-offline-sync.png');
    await wd.assertNoMachineIds('window: sync, offline');

    // The relay comes back, on the same data and port, over a weak signal (about 100 KB a
    // second): the app syncs by itself, and every look at the sync screen meanwhile (every 50 ms)
    // is written down.
    village.bytesPerSecond = 100000;
    await wd.exec(`(${SYNC_LOOKS_START})();`);
    const backAt = Date.now();
    relay = await startRelay(relayDir, relayPort);
    await wd.waitFor('the online mark', async () => (await wd.attr(tid('online-mark'), 'data-online')) === 'true', 30000);
    const noticedIn = Date.now() - backAt;
    await wd.find(`${tid('sync-progress')}[data-fraction="1"]`, 60000);
    await wd.waitFor('nothing left to go up', async () => (await wd.attr(tid('pending-count'), 'data-count')) === '0');
    await sleep(200); // a few more looks, at the finished screen
    const seen = await wd.exec(`return (${SYNC_LOOKS_END})();`);
    village.bytesPerSecond = null;
    const fractions = assertSyncHonest(seen);
    assert(fractions[fractions.length - 1] === 1, `the last look shows the sync finished: ${fractions.slice(-3)}`);
    // The screen was watched while the sync ran, not only before and after it.
    const midway = seen.filter(([f, syncing]) => syncing === 'true' && f > 0 && f < 1);
    assert(midway.length > 0, `the sync screen showed the sync under way: ${JSON.stringify(seen)}`);
    assert((await wd.text(tid('sync-progress'))) === '100%' && (await wd.text(tid('sync-heading'))) === '同步完成', 'the sync screen says the sync is done');
    await wd.find(tid('sync-all-up'));
    const syncingLooks = seen.filter(([, syncing]) => syncing === 'true').length;
    const shown = [...new Set(seen.map((l) => l[3]))].join(' → ');
    console.log(`window: sync screen ${seen.length} looks (${syncingLooks} while syncing, over ${((Date.now() - backAt) / 1000).toFixed(1)} s), bar ${shown} never back, never past 100 %; reconnection noticed ${noticedIn} ms after the relay started`);
    await wd.screenshot('window-10-synced.png');
    await wd.assertNoMachineIds('window: sync, done');
    // The request recorded offline reached the hall with its photo, and shows its thumbnail.
    gw(hall, 'sync');
    assert(JSON.parse(gw(hall, '--json', 'request', 'show', offlineId)).body.description === offlineDescription, 'the request recorded offline reached the hall');
    assert(JSON.parse(gw(hall, '--json', 'photo', 'list', offlineId)).photos.length === 1, 'the photo taken offline reached the hall');
    await wd.click(tid('tab-requests'));
    await wd.click(`${tid('request-item')}[data-request-id="${offlineId}"]`);
    await wd.find(`${tid('photo-thumb')}[data-state="ok"]`, 15000);
    await wd.waitFor('the relay receipt on the timeline', async () => (await wd.attr(tid('timeline-relay-time'), 'data-received')) === 'yes', 15000);
    await wd.screenshot('window-11-offline-request-synced.png');
    await wd.assertNoMachineIds('window: request detail, recorded offline, synced');

    // 4. The hall accepts, assigns and resolves her request; on the doorstep she reports back and
    //    records the resident's rating.
    const office = offices.find((o) => o.level === 'town') ?? offices[0];
    gw(hall, 'request', 'accept', requestId);
    gw(hall, 'request', 'assign', requestId, '--department', office.id, '--deadline', dayFromToday(7), '--level', 'village');
    gw(hall, 'request', 'resolve', requestId, '--note', '更换灯头，路灯已恢复照明');
    gw(hall, 'sync');
    // She asks for a sync on the sync screen, then opens her request.
    await wd.click(tid('tab-sync'));
    await wd.click(tid('sync-now'));
    await wd.click(tid('tab-requests'));
    await wd.click(`${tid('request-item')}[data-request-id="${requestId}"]`);
    await wd.find(`${tid('detail-status')}[data-status="resolved"]`, 30000);
    assert((await wd.text(tid('detail-status'))) === '已办结', `the window says resolved: ${await wd.text(tid('detail-status'))}`);
    assert((await wd.text(tid('detail-office'))) === office.name, `the office by its name: ${await wd.text(tid('detail-office'))}`);
    await wd.scrollTo(tid('doorstep-actions'));
    await wd.screenshot('window-12-resolved.png');
    await wd.assertNoMachineIds('window: a resolved request');
    await wd.type(tid('feedback-note'), '已告知张大爷路灯修好了');
    await wd.click(tid('feedback-submit'));
    await wd.find(`${tid('detail-status')}[data-status="feedback_given"]`, 15000);
    assert((await wd.text(tid('detail-status'))) === '已反馈', `the window says feedback given: ${await wd.text(tid('detail-status'))}`);
    await wd.click(tid('rating-satisfied'));
    await wd.click(tid('rating-submit'));
    await wd.find(`${tid('detail-status')}[data-status="rated"]`, 15000);
    assert((await wd.text(tid('detail-status'))) === '已评价', `the window says rated: ${await wd.text(tid('detail-status'))}`);
    assert((await wd.text(tid('detail-rating'))) === '满意', `the rating shown: ${await wd.text(tid('detail-rating'))}`);
    assert((await wd.count(tid('doorstep-actions'))) === 0, 'nothing is left to do on the doorstep');
    await wd.noToast();
    await wd.exec('window.scrollTo(0, 0);');
    await wd.screenshot('window-13-rated.png');
    // The same screen on a small phone: nothing wider than it.
    await wd.setSize(360, 740);
    await wd.assertFitsWidth('the rated request at 360 × 740');
    await wd.scrollTo(`${tid('timeline-event')}[data-type="rated"]`);
    await wd.screenshot('window-14-rated-timeline-360.png');
    await wd.setSize(390, 844);
    await wd.assertNoMachineIds('window: a rated request');
    // Both went up by themselves; the hall has them.
    await wd.waitFor('nothing left to go up', async () => (await wd.attr(tid('pending-count'), 'data-count')) === '0');
    await wd.waitFor('the hall to receive the feedback and the rating', async () => {
      gw(hall, 'sync');
      const { state, history } = JSON.parse(gw(hall, '--json', 'request', 'show', requestId));
      const feedback = history.find((h) => h.action.type === 'feedback_given');
      return state.status === 'rated' && state.rating === 'satisfied' && feedback?.action.note === '已告知张大爷路灯修好了';
    }, 30000);
    console.log('window: accepted, assigned and resolved at the hall; feedback and a satisfied rating recorded in the window and received at the hall');
    await closeApp(app);
    app = null;

    // 5. A hall PC in a window of its own: it enrols with the hall role and its staff sign in.
    app = await openApp(xvfb.display, join(dir, 'hall-pc'));
    wd = app.wd;
    await wd.setSize(1280, 1000);
    await wd.find(tid('screen-enroll'), 30000);
    await wd.type(tid('enroll-relay'), relay.url);
    await wd.type(tid('enroll-code'), relayCli(relayDir, 'enroll', '--name', '服务中心前台电脑', '--role', 'hall'));
    await wd.type(tid('enroll-device'), '服务中心前台电脑');
    await wd.click(tid('enroll-submit'));
    // The first sync brings the staff roster: this PC is shared, so its staff sign in.
    await wd.find(tid('screen-sign-in'), 30000);
    await wd.find(`${tid('sign-in-person')}[data-person="${STAFF[0].id}"]`, 30000);
    await wd.screenshot('window-15-hall-sign-in.png');
    await wd.assertNoMachineIds('window, hall PC: sign-in');
    await wd.click(`${tid('sign-in-person')}[data-person="${STAFF[0].id}"]`);
    await wd.type(tid('sign-in-pin'), STAFF[0].pin);
    await wd.click(tid('sign-in-submit'));
    await wd.find(`${tid('signed-in')}[data-person="${STAFF[0].id}"]`, 15000);
    assert((await wd.text(tid('signed-in-name'))) === STAFF[0].name, `signed in as ${STAFF[0].name}`);
    await wd.find(`${tid('app-shell')}[data-layout="desktop"]`);

    // The monthly list: this month's requests, and last month's still open, marked and counted
    // apart.
    await wd.click(tid('nav-monthly'));
    await wd.find(tid('screen-monthly'));
    await wd.find(`${tid('monthly-row')}[data-request-id="${carriedId}"][data-carried="yes"]`, 30000);
    await wd.find(`${tid('monthly-row')}[data-request-id="${requestId}"][data-carried="no"][data-completion="resolved"]`, 30000);
    const mark = await wd.exec(
      'return document.querySelector(arguments[0]).innerText;',
      `${tid('monthly-row')}[data-request-id="${carriedId}"] ${tid('monthly-carried')}`,
    );
    assert(/往月结转/.test(mark), `the carried-over row says so: ${mark}`);
    const carriedRows = await wd.count(`${tid('monthly-row')}[data-carried="yes"]`);
    const carriedTotal = Number(await wd.attr(tid('monthly-carried-total'), 'data-carried'));
    assert(carriedRows > 0 && carriedRows === carriedTotal, `carried-over rows ${carriedRows} = summary ${carriedTotal}`);
    await wd.scrollTo(`${tid('monthly-row')}[data-request-id="${carriedId}"]`);
    await wd.screenshot('window-16-hall-monthly.png');
    await wd.assertNoMachineIds('window, hall PC: monthly list');
    console.log(`window, hall PC: monthly list with ${carriedRows} requests carried over from earlier months, ours marked "${mark.trim()}"`);

    // The dashboard: Chinese in the shipped font, and no chart label on another.
    await wd.click(tid('nav-dashboard'));
    await wd.find(tid('screen-dashboard'));
    await wd.waitFor('the charts to finish drawing', async () => wd.exec(`return (${CHARTS_DRAWN})();`), 30000);
    await sleep(300); // a resize's last frame
    assertCjkRenders(await wd.run(CJK_RENDER_CHECK, SHIPPED_FONT, CJK_SAMPLE), 'WebKitGTK window, hall dashboard');
    const charts = await wd.exec(`return (${CHART_TEXTS})();`);
    const problems = chartLabelProblems(charts);
    assert(!problems.length, `chart labels in the window must not overlap:\n  ${problems.slice(0, 30).join('\n  ')}`);
    const counted = charts.map((c) => `${c.id} ${c.texts.length}`).join(', ');
    await wd.screenshot('window-17-hall-dashboard.png');
    await wd.scrollTo(tid('chart-category'));
    await wd.screenshot('window-18-hall-dashboard-breakdowns.png');
    await wd.assertNoMachineIds('window, hall PC: dashboard');
    console.log(`window, hall PC: dashboard charts at 1280 px, no label overlaps (${counted} texts)`);

    console.log(`window e2e: ok (enrol by QR → 12 MP photo → offline and back → resolved, feedback, rating → hall PC: monthly list, charts) in ${((Date.now() - began) / 1000).toFixed(0)} s`);
  } catch (e) {
    // What the window showed when it failed, to look at beside the message.
    await app?.wd.screenshot('window-failed.png').catch(() => {});
    const shown = await app?.wd.exec('return document.body.innerText;').catch(() => null);
    if (shown) console.error(`the window showed:\n${shown}`);
    throw e;
  } finally {
    await closeApp(app);
    if (xvfb) await stop(xvfb.child);
    await village.close();
    await stop(relay.child);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
