// The real app in a real window: the Tauri binary (target/debug/gridwalk-app, with ui/dist
// embedded) driven through tauri-driver and WebKitWebDriver under a virtual X display. A walker
// enrols against a real relay process, raises a request, the app syncs it by itself, and the
// request is then on the relay (the hall receives it from there).
//
// Run: node tests/e2e/window.mjs   (scripts/test.sh does, after building the workspace)
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { BIN, CJK_RENDER_CHECK, CJK_SAMPLE, OUT, SHIPPED_FONT, assert, assertCjkRenders, freePort, gw, hallWithTown, relayCli, sleep, startRelay, stop, tempDir } from './lib.mjs';

const APP = join(BIN, 'gridwalk-app');
const DRIVER = [join(homedir(), '.cargo/bin/tauri-driver'), 'tauri-driver'].find((p) => p === 'tauri-driver' || existsSync(p));

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
  async click(css) {
    const id = await this.find(css);
    try {
      await this.cmd('POST', `${this.session}/element/${id}/click`, {});
    } catch (e) {
      // A passing toast or the fixed bar can sit over the element for a moment; a click from
      // the page itself reaches it all the same, as a tap would once the toast is gone.
      if (!String(e.message).includes('intercepted')) throw e;
      await this.cmd('POST', `${this.session}/execute/sync`, {
        script: 'const el = document.querySelector(arguments[0]); el.scrollIntoView({block: "center"}); el.click();',
        args: [css],
      });
    }
  }
  async type(css, text) {
    const id = await this.find(css);
    await this.cmd('POST', `${this.session}/element/${id}/clear`, {});
    await this.cmd('POST', `${this.session}/element/${id}/value`, { text });
  }
  async attr(css, name) {
    const id = await this.find(css);
    return this.cmd('GET', `${this.session}/element/${id}/attribute/${name}`);
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
  async quit() {
    if (this.session) await this.cmd('DELETE', this.session).catch(() => {});
  }
}

async function main() {
  assert(existsSync(APP), `${APP} is missing: build the workspace first`);
  assert(DRIVER, 'tauri-driver is missing: bash scripts/setup.sh ui-tests installs it');
  const dir = tempDir('window');
  const relayDir = join(dir, 'relay');
  const relay = await startRelay(relayDir);
  let xvfb;
  let driver;
  let wd;
  try {
    const hall = hallWithTown(dir, relayDir, relay.url);
    const grid = 'v01-g01';
    const code = relayCli(relayDir, 'enroll', '--name', 'window-phone', '--grids', grid, '--walker', 'w001');

    xvfb = await startXvfb();
    const port = await freePort();
    const nativePort = await freePort();
    // Its own process group, so that ending the group ends WebKitWebDriver and the app too.
    driver = spawn(DRIVER, ['--port', String(port), '--native-port', String(nativePort)], {
      env: { ...process.env, DISPLAY: xvfb.display, GRIDWALK_DATA_DIR: join(dir, 'phone') },
      stdio: 'ignore',
      detached: true,
    });
    wd = new WebDriver(`http://127.0.0.1:${port}`);
    await wd.waitFor('tauri-driver', async () => (await fetch(`http://127.0.0.1:${port}/status`)).ok, 20000);
    await wd.start({ 'tauri:options': { application: APP } });

    // WebKitGTK draws Chinese with the font the app ships (this machine may have no CJK font).
    await wd.find('[data-testid=screen-enroll]', 30000);
    assertCjkRenders(await wd.run(CJK_RENDER_CHECK, SHIPPED_FONT, CJK_SAMPLE), 'WebKitGTK window, enrol screen');

    await wd.type('[data-testid=enroll-relay]', relay.url);
    await wd.type('[data-testid=enroll-code]', code);
    await wd.type('[data-testid=enroll-device]', '窗口测试手机');
    await wd.screenshot('window-enroll.png');
    await wd.click('[data-testid=enroll-submit]');
    // A walker's phone asks for the PIN it will open with (issue 14), in the real window too.
    await wd.find('[data-testid=setpin-screen]', 30000);
    await wd.type('[data-testid=setpin-pin]', '2580');
    await wd.type('[data-testid=setpin-again]', '2580');
    await wd.screenshot('window-choose-pin.png');
    await wd.click('[data-testid=setpin-submit]');
    await wd.find('[data-testid=app-shell]', 30000);
    // The roster arrives with the first sync: her grid is listed.
    await wd.waitFor('her grid', async () => (await wd.attr('[data-testid=grid-item]', 'data-grid-id')) === grid);
    await wd.screenshot('window-grids.png');

    await wd.click('[data-testid=tab-requests]');
    await wd.click('[data-testid=request-new]');
    await wd.click('[data-testid=request-category] option[value=streetlight]');
    const description = `窗口测试：村口路灯不亮 ${Date.now()}`;
    await wd.type('[data-testid=request-description]', description);
    await wd.type('[data-testid=request-address]', '马社村口');
    await wd.screenshot('window-request-form.png');
    await wd.click('[data-testid=request-submit]');
    await wd.find('[data-testid=screen-request]', 20000);

    // The app syncs by itself. The pending count alone cannot tell: it may still read 0 from
    // before the request was saved. The relay's receipt time on the timeline can: the detail
    // screen loads again after each sync.
    await wd.waitFor(
      'the relay receipt on the timeline',
      async () => (await wd.attr('[data-testid=timeline-relay-time]', 'data-received')) === 'yes',
      60000,
    );
    await wd.waitFor('nothing left to go up', async () => (await wd.attr('[data-testid=pending-count]', 'data-count')) === '0');
    await wd.screenshot('window-request-synced.png');

    // On the relay: the hall pulls it from there.
    gw(hall, 'sync');
    const found = JSON.parse(gw(hall, '--json', 'request', 'list', '--grid', grid, '--limit', '500'));
    assert(found.some((r) => r.description === description), 'the request raised in the window is on the relay');
    console.log('window e2e: ok (enrol → raise a request → synced → on the relay)');
  } finally {
    if (wd) await wd.quit();
    if (driver) {
      try {
        process.kill(-driver.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    if (xvfb) await stop(xvfb.child);
    await stop(relay.child);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
