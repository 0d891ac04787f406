// The app lock (issue 14) in Debian's Chromium at phone size, against the real core and a real
// relay process, in Chinese and in English: a walker's phone asks for its PIN when it opens,
// locks itself when left alone, says a wrong PIN in the user's language, and after five wrong
// PINs makes her wait with a countdown (the button off). The right PIN opens it as before.
//
// Each phone is a `gridwalk-bridge` with its own data directory, left alone for 5 s before it
// locks (`--lock-after-s`); the phones enrol through the app's own `enroll` command, with a PIN.
//
// Run: node ui/e2e/lock.mjs   (scripts/test.sh does, after building the UI and the workspace)
import { chromium } from 'playwright-core';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { BIN, OUT, ROOT, assert, hallWithTown, relayCli, sleep, startListening, startRelay, stop, tempDir } from '../../tests/e2e/lib.mjs';
import { assertNoMachineIds } from './visible.mjs';

const GRID = 'v01-g01';
const PIN = '2580';
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const tid = (id) => `[data-testid="${id}"]`;
/** Seconds a phone here stays unlocked without someone at the screen. */
const IDLE_S = 5;

async function phone(dir, name) {
  return startListening(join(BIN, 'gridwalk-bridge'), [
    '--data-dir', join(dir, name), '--listen', '127.0.0.1:0', '--ui', join(ROOT, 'ui/dist'),
    '--check-every-s', '0.5', '--lock-after-s', String(IDLE_S),
  ]);
}

async function api(device, command, args = {}) {
  const r = await fetch(`${device.url}/api/${command}`, { method: 'POST', body: JSON.stringify(args) });
  const body = await r.json();
  return { ok: r.ok, body };
}

async function shot(page, name) {
  await page.screenshot({ path: join(OUT, `lock-${name}.png`), fullPage: true });
}

/** Five wrong PINs: each said in the page's language; then the wait, with the button off. */
async function wrongPins(page, lang, device) {
  const lockError = page.locator(tid('lock-error'));
  for (let i = 1; i <= 5; i++) {
    await page.locator(tid('lock-pin')).fill('1111');
    const answered = page.waitForResponse((r) => r.url().endsWith('/api/unlock'));
    await page.locator(tid('lock-submit')).click();
    await answered;
    await lockError.waitFor();
    await sleep(100);
    const said = await lockError.innerText();
    if (lang === 'zh') {
      assert(/PIN/.test(said) && /[\u4e00-\u9fff]/.test(said) && !/wrong PIN|more tries/i.test(said), `wrong PIN ${i} said in Chinese: ${said}`);
    } else {
      assert(/PIN/.test(said) && !/[\u4e00-\u9fff]/.test(said), `wrong PIN ${i} said in English: ${said}`);
    }
    if (i === 1) await shot(page, `${lang}-wrong-pin`);
  }
  // After the fifth she must wait: a countdown and the button off, and the core refuses even
  // the right PIN until the wait is over.
  await page.locator(tid('lock-wait')).waitFor({ timeout: 10000 });
  const early = await api(device, 'unlock', { pin: PIN });
  assert(!early.ok && early.body.code === 'pin_attempts_slowed', `the right PIN waits too: ${JSON.stringify(early.body)}`);
  const held = await api(device, 'status');
  assert(held.body.lock.wait_seconds > 0, `the core makes her wait after five wrong PINs: ${JSON.stringify(held.body.lock)}`);
  const wait = await page.locator(tid('lock-wait')).innerText();
  const seconds = Number(await page.locator(tid('lock-wait')).getAttribute('data-seconds'));
  assert(seconds > 0 && seconds <= 30, `a wait of up to 30 s after five wrong PINs: ${seconds} (${wait})`);
  assert(lang === 'zh' ? /秒/.test(wait) : /second|s\b/i.test(wait), `the wait is said in ${lang}: ${wait}`);
  assert(await page.locator(tid('lock-submit')).isDisabled(), 'the unlock button is off while she must wait');
  await shot(page, `${lang}-wait`);
  return seconds;
}

async function main() {
  const dir = tempDir('lock');
  const relayDir = join(dir, 'relay');
  const relay = await startRelay(relayDir);
  const devices = [];
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  try {
    hallWithTown(dir, relayDir, relay.url);
    for (const [lang, name, walker] of [['zh', 'phone-zh', 'w001'], ['en', 'phone-en', 'w002']]) {
      let device = await phone(dir, name);
      devices.push(device);
      const code = relayCli(relayDir, 'enroll', '--name', name, '--grids', GRID, '--walker', walker);
      const enrolled = await api(device, 'enroll', { relay_url: relay.url, code, device_name: name, pin: PIN });
      assert(enrolled.ok && enrolled.body.lock.lock === 'pin', `enrolled with a PIN: ${JSON.stringify(enrolled.body.lock)}`);

      const context = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, locale: lang === 'zh' ? 'zh-CN' : 'en-US', hasTouch: true });
      const page = await context.newPage();
      page.on('pageerror', (e) => console.error('page error:', e.message));
      await page.goto(device.url);
      await page.locator(tid('app-shell')).waitFor({ timeout: 30000 });
      if (lang === 'en') {
        await page.locator(tid('tab-sync')).click();
        await page.locator(tid('lang-en')).click();
      }

      // Left alone, it locks: the PIN pad replaces the screen.
      const started = Date.now();
      await page.locator(tid('lock-screen')).waitFor({ timeout: (IDLE_S + 10) * 1000 });
      const after = (Date.now() - started) / 1000;
      assert(after >= IDLE_S - 1, `locked after ${after} s alone, not before ${IDLE_S} s`);
      assert(!(await page.locator(tid('app-shell')).count()), 'nothing of the app shows behind the PIN pad');
      await shot(page, `${lang}-idle-locked`);
      await assertNoMachineIds(page, `${lang} lock screen`);
      const text = await page.locator(tid('lock-screen')).innerText();
      if (lang === 'zh') assert(/解锁/.test(text), `the lock screen is in Chinese: ${text}`);
      else assert(/unlock/i.test(text) && !/[\u4e00-\u9fff]/.test(text.replace(/中文/g, '')), `the lock screen is in English: ${text}`);
      // A command while locked is refused by the core itself, not only hidden by the page.
      const refused = await api(device, 'visits', { grid: GRID });
      assert(!refused.ok && refused.body.code === 'app_locked', `the core refuses while locked: ${JSON.stringify(refused.body)}`);

      if (lang === 'zh') {
        const seconds = await wrongPins(page, lang, device);
        // The wait is kept by the core, not the page: a reload still waits.
        await page.reload();
        const during = await api(device, 'status');
        assert(during.body.lock.locked && during.body.lock.wait_seconds > 0, `the core still makes her wait: ${JSON.stringify(during.body.lock)}`);
        await page.locator(tid('lock-wait')).waitFor({ timeout: 10000 });
        // Then the right PIN opens the app where she was.
        await page.waitForFunction(() => !document.querySelector('[data-testid="lock-wait"]'), null, { timeout: (seconds + 5) * 1000 });
      } else {
        // One wrong PIN, said in English.
        await page.locator(tid('lock-pin')).fill('9999');
        await page.locator(tid('lock-submit')).click();
        await page.locator(tid('lock-error')).waitFor();
        const said = await page.locator(tid('lock-error')).innerText();
        assert(!/[\u4e00-\u9fff]/.test(said) && /PIN/.test(said), `a wrong PIN said in English: ${said}`);
        await shot(page, 'en-wrong-pin');
      }
      await page.locator(tid('lock-pin')).fill(PIN);
      await page.locator(tid('lock-submit')).click();
      await page.locator(tid('app-shell')).waitFor({ timeout: 15000 });
      const visits = await api(device, 'visits', { grid: GRID });
      assert(visits.ok, 'unlocked: the core answers again');

      // Closed and opened again: it asks for the PIN before anything.
      await context.close();
      await stop(device.child);
      device = await phone(dir, name);
      devices.push(device);
      const reopened = await browser.newContext({ viewport: { width: 360, height: 740 }, locale: lang === 'zh' ? 'zh-CN' : 'en-US' });
      const page2 = await reopened.newPage();
      await page2.goto(device.url);
      await page2.locator(tid('lock-screen')).waitFor({ timeout: 15000 });
      await shot(page2, `${lang}-on-open-360`);
      const fits = await page2.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
      assert(fits, 'the PIN pad fits 360 px without sideways scrolling');
      await page2.locator(tid('lock-pin')).fill(PIN);
      await page2.locator(tid('lock-pin')).press('Enter');
      await page2.locator(tid('app-shell')).waitFor({ timeout: 15000 });
      if (lang === 'zh') {
        // A forgotten PIN: the records are set aside, still encrypted, and the phone enrols again.
        await api(device, 'lock');
        await page2.locator(tid('lock-screen')).waitFor({ timeout: 15000 });
        await page2.locator(tid('lock-forgot-open')).click();
        await page2.locator(tid('lock-forgot-panel')).waitFor();
        await shot(page2, 'zh-forgot-pin');
        await page2.locator(tid('lock-forgot-confirm')).click();
        await page2.locator(tid('screen-enroll')).waitFor({ timeout: 15000 });
        const held = readdirSync(join(dir, name, 'held'));
        assert(held.length === 1 && readdirSync(join(dir, name, 'held', held[0])).includes('gridwalk.db'), `the records are kept aside: ${held}`);
        console.log('lock e2e (zh): a forgotten PIN sets the records aside, encrypted, and the phone enrols again');
        // Enrolled again, the phone asks for the hand-over of what it set aside: the sync screen
        // says it waits for the hall. Once the hall confirms (here its operator, at the relay's
        // command line; the console's card is in the hall e2e), the set-aside records come over
        // and the old copy is destroyed.
        const again = relayCli(relayDir, 'enroll', '--name', `${name}-again`, '--grids', GRID, '--walker', walker);
        const reenrolled = await api(device, 'enroll', { relay_url: relay.url, code: again, device_name: `${name}-again`, pin: PIN });
        assert(reenrolled.ok, `enrolled again: ${JSON.stringify(reenrolled.body)}`);
        await page2.locator(tid('app-shell')).waitFor({ timeout: 30000 });
        await page2.locator(tid('tab-sync')).click();
        await page2.locator(`${tid('held-store')}[data-state="pending"]`).waitFor({ timeout: 30000 });
        const waiting = await page2.locator(tid('held-store')).innerText();
        assert(/服务中心/.test(waiting) && /本人/.test(waiting), `the phone says the hall must confirm her: ${waiting}`);
        await shot(page2, 'zh-handover-waiting-360');
        await assertNoMachineIds(page2, 'zh sync screen, hand-over waiting');
        const old = JSON.parse(relayCli(relayDir, 'devices', '--json')).find((d) => d.name === name).id;
        relayCli(relayDir, 'confirm-handover', old, '--by', '系统管理员');
        await api(device, 'sync_now');
        await page2.locator(`${tid('held-store')}[data-state="done"]`).waitFor({ timeout: 30000 });
        await shot(page2, 'zh-handover-done-360');
        assert(!readdirSync(join(dir, name, 'held')).includes(held[0]), 'the old store is gone once handed over');
        const oldDevice = JSON.parse(relayCli(relayDir, 'devices', '--json')).find((d) => d.id === old);
        assert(oldDevice.revoked_at && oldDevice.wiped_at, `the relay shows the old device revoked and wiped: ${JSON.stringify(oldDevice)}`);
        console.log('lock e2e (zh): the new enrolment takes the set-aside records over once the hall confirms');
      }
      if (lang === 'en') {
        // The phone's lock on the sync screen: lock now, and the change-PIN form, at 360 px.
        await page2.locator(tid('tab-sync')).click();
        await page2.locator(tid('lang-en')).click();
        await page2.locator(tid('changepin-open')).click();
        await page2.locator(tid('changepin-current')).waitFor();
        // As she sees it (a whole-page picture draws the fixed bars mid-page): the save button
        // scrolled into view, above the tab bar, reached by a tap on its middle.
        await page2.evaluate(() => document.querySelector('[data-testid="changepin-submit"]').scrollIntoView({ block: 'center' }));
        await sleep(200);
        const reached = await page2.evaluate(() => {
          const b = document.querySelector('[data-testid="changepin-submit"]').getBoundingClientRect();
          const hit = document.elementFromPoint(b.left + b.width / 2, b.top + b.height / 2);
          return !!hit && hit.closest('[data-testid="changepin-submit"]') !== null;
        });
        assert(reached, 'the change-PIN button is not hidden under the tab bar');
        await page2.screenshot({ path: join(OUT, 'lock-en-sync-phone-lock-360.png') });
        await assertNoMachineIds(page2, 'en sync screen, phone lock');
        const wide = await page2.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
        assert(wide, 'the sync screen with its PIN form fits 360 px');
        // Revoked by the hall: the phone wipes itself and the enrol screen says why.
        const devices = JSON.parse(relayCli(relayDir, 'devices', '--json'));
        const id = devices.find((d) => d.name === name).id;
        relayCli(relayDir, 'revoke', id);
        await api(device, 'sync_now');
        await page2.locator(tid('wiped-notice')).waitFor({ timeout: 30000 });
        const notice = await page2.locator(tid('wiped-notice')).innerText();
        assert(/hall/i.test(notice) && !/[\u4e00-\u9fff]/.test(notice), `the wipe is said in English: ${notice}`);
        await shot(page2, 'en-wiped-360');
        await assertNoMachineIds(page2, 'en enrol screen after a wipe');
        assert(readdirSync(join(dir, name)).every((f) => !f.startsWith('gridwalk.db')), 'nothing of the store is left');
        console.log('lock e2e (en): a revoked phone wipes itself and its enrol screen says so');
      }
      await reopened.close();
      console.log(`lock e2e (${lang}): locked after ${after.toFixed(1)} s alone, wrong PINs said in ${lang}, ${lang === 'zh' ? 'the wait after five with the button off, ' : ''}PIN asked on open`);
    }
    console.log('lock e2e: ok');
  } finally {
    await browser.close();
    for (const d of devices) await stop(d.child);
    await stop(relay.child);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
