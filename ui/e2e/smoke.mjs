// A walk through the app in headless Chromium against a running gridwalk-bridge (browser mode).
// Not part of `npm test` (that needs a relay and a bridge):
//   BASE=http://127.0.0.1:8471 RELAY=http://127.0.0.1:8470 CODE=XXXX node e2e/smoke.mjs
// Screenshots go to $SHOTS (default test-output/). Chromium: $CHROMIUM or /usr/bin/chromium.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';

const BASE = process.env.BASE ?? 'http://127.0.0.1:8471';
const RELAY = process.env.RELAY;
const CODE = process.env.CODE;
const SHOTS = process.env.SHOTS ?? 'test-output';
const WIDTH = Number(process.env.WIDTH ?? 360);
const HEIGHT = Number(process.env.HEIGHT ?? 740);
mkdirSync(SHOTS, { recursive: true });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
const page = await browser.newPage({ viewport: { width: WIDTH, height: HEIGHT }, deviceScaleFactor: 2, hasTouch: true, isMobile: true });
const problems = [];
page.on('console', (m) => m.type() === 'error' && problems.push('console: ' + m.text()));
page.on('pageerror', (e) => problems.push('pageerror: ' + e.message));
page.on('response', async (r) => {
  if (r.url().includes('/api/') && !r.ok()) problems.push(`api ${r.url().split('/api/')[1]} ${r.status()} ${await r.text().catch(() => '')}`);
});
let n = 0;
const shot = async (name, fullPage = false) => page.screenshot({ path: `${SHOTS}/${String(++n).padStart(2, '0')}-${name}.png`, fullPage });
const api = (cmd, args = {}) =>
  page.evaluate(
    async ([cmd, args]) => {
      const r = await fetch('/api/' + cmd, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(args) });
      const body = await r.json();
      if (!r.ok) throw new Error(cmd + ': ' + JSON.stringify(body));
      return body;
    },
    [cmd, args],
  );
const id = (t) => page.getByTestId(t);
const step = (s) => console.log('--', s);
// Every visible control is at least 44×44 CSS px (a checkbox counts by its label).
async function checkTargets(screen) {
  const small = await page.evaluate(() => {
    const out = [];
    for (const el of document.querySelectorAll('button, a[href], input, select, textarea')) {
      const box = el.getBoundingClientRect();
      if (box.width === 0 || box.height === 0 || el.classList.contains('visually-hidden')) continue;
      let target = box;
      if (el.type === 'checkbox' || el.type === 'radio') {
        const label = el.closest('label');
        if (label) target = label.getBoundingClientRect();
      }
      if (target.height < 44 || target.width < 44) out.push(`${el.dataset.testid ?? el.tagName.toLowerCase()} ${Math.round(target.width)}×${Math.round(target.height)}`);
    }
    return out;
  });
  if (small.length) problems.push(`small touch targets on ${screen}: ${small.join(', ')}`);
}

try {
  await page.goto(BASE);
  if (await id('screen-enroll').isVisible({ timeout: 5000 }).catch(() => false)) {
    step('enrol');
    await shot('enroll');
    if (!RELAY || !CODE) throw new Error('the device is not enrolled: set RELAY and CODE');
    await id('enroll-relay').fill(RELAY);
    await id('enroll-code').fill(CODE);
    await id('enroll-device').fill('王芳的手机');
    await id('enroll-submit').click();
  }
  await id('app-shell').waitFor({ timeout: 30000 });
  const online = await id('online-mark').getAttribute('data-online');
  step('enrolled; online=' + online + ' pending=' + (await id('pending-count').textContent()));

  step('sync');
  await id('tab-sync').click();
  await id('screen-sync').waitFor();
  await shot('sync-start');
  await id('sync-now').click();
  await page.waitForFunction(() => document.querySelector('[data-testid=sync-progress]')?.getAttribute('data-syncing') === 'false' && !/还没有|Never/.test(document.querySelector('[data-testid=sync-last]')?.textContent ?? ''), null, { timeout: 120000 });
  step('sync done: fraction ' + (await id('sync-progress').getAttribute('data-fraction')));
  await shot('sync-done');
  await checkTargets('sync-done');

  step('grids');
  await id('tab-grids').click();
  await id('grid-item').first().waitFor();
  await shot('grids');
  await checkTargets('grids');
  await id('grid-item').first().click();
  await id('place-item').first().waitFor();
  await shot('places');
  await checkTargets('places');
  const total = await id('place-item').count();
  await id('place-search').fill('zgy');
  await page.waitForTimeout(600);
  step(`places: ${total}, matching zgy: ${await id('place-item').count()}`);
  await shot('places-search');
  await id('place-search').fill('');
  await page.waitForTimeout(400);
  await id('place-item').first().click();
  await id('screen-place').waitFor();
  await id('place-visits').or(id('place-no-visits')).first().waitFor();
  await shot('place');
  await checkTargets('place');
  await id('visit-new').click();

  step('visit');
  await id('visit-kind-daily').click();
  await id('visit-companions-input').fill('村书记 王建国');
  await id('visit-companions-add').click();
  await id('visit-notes').fill('了解家庭近况，反映路灯不亮。');
  await page.waitForTimeout(700); // the draft is saved (debounced)
  await page.reload();
  await id('visit-notes').waitFor();
  await page.waitForFunction(() => document.querySelector('[data-testid=visit-notes]')?.value === '了解家庭近况，反映路灯不亮。', null, { timeout: 5000 });
  step('visit draft survived a reload');
  await shot('visit-form');
  await checkTargets('visit-form');
  await id('visit-submit').click();
  await id('visit-raise-request').click();

  step('request');
  await id('screen-request-new').waitFor();
  await id('request-category').selectOption({ index: 1 });
  await id('request-submit').click();
  await id('request-description-error').waitFor();
  await id('request-description').fill('门口路灯不亮已有一周，晚上出行不便。');
  await id('request-urgency').selectOption('high');
  const png = await page.screenshot({ clip: { x: 0, y: 0, width: 64, height: 64 } });
  await id('request-photo-input').setInputFiles([{ name: 'streetlight.png', mimeType: 'image/png', buffer: png }]);
  await id('request-photo-remove').waitFor();
  await shot('request-form');
  await checkTargets('request-form');
  await id('request-submit').click();
  await id('screen-request').waitFor();
  await id('request-timeline').waitFor();
  await id('photo-thumb').first().waitFor();
  await page.waitForFunction(() => document.querySelector('[data-testid=photo-thumb]')?.getAttribute('data-state') !== 'loading');
  step('photo thumb: ' + (await id('photo-thumb').first().getAttribute('data-state')));
  await shot('request-detail', true);
  await checkTargets('request-detail');
  const requestId = await id('screen-request').getAttribute('data-request-id');

  step('the hall handles it (through the API), the walker reports back and records the rating');
  await api('act', { id: requestId, action: { type: 'triaged', decision: { kind: 'accept' } } });
  await api('act', { id: requestId, action: { type: 'assigned', department: 'dept-urban', deadline: Date.now() + 7 * 86400000, level: 'town' } });
  await api('act', { id: requestId, action: { type: 'resolved', note: '已更换路灯灯头' } });
  await page.reload();
  await id('feedback-note').fill('路灯已经修好，晚上亮了。');
  await shot('feedback');
  await checkTargets('feedback');
  await id('feedback-submit').click();
  await id('rating-satisfied').click();
  await id('rating-comment').fill('修得很快');
  await shot('rating');
  await checkTargets('rating');
  await id('rating-submit').click();
  await id('detail-rating').waitFor();
  step('status now ' + (await id('detail-status').getAttribute('data-status')) + ', events ' + (await id('timeline-event').count()));
  await shot('rated', true);

  step('requests list');
  await id('tab-requests').click();
  await id('request-item').first().waitFor();
  step('requests: ' + (await id('request-total').getAttribute('data-total')) + ', overdue first: ' + (await id('request-item').first().getAttribute('data-overdue')));
  await shot('requests');
  await checkTargets('requests');
  await id('request-filter-feedback').click();
  await page.waitForTimeout(600);
  step('to be rated: ' + (await id('request-item').count()));
  await id('request-filter-all').click();
  step('english');
  await id('tab-sync').click();
  await id('lang-en').click();
  await shot('sync-en', true);
  await page.goto(BASE + '#/request/' + requestId);
  await id('request-timeline').waitFor();
  await shot('detail-en', true);
  await id('tab-requests').click();
  await id('request-filter-all').click();
  await id('request-item').first().waitFor();
  await shot('requests-en');
  await id('tab-sync').click();
  await id('lang-zh').click();
} catch (e) {
  problems.push('failed: ' + (e instanceof Error ? e.message : String(e)));
  await shot('failure').catch(() => {});
} finally {
  await browser.close();
}
if (problems.length) {
  console.log('PROBLEMS:\n' + problems.join('\n'));
  process.exit(1);
}
console.log('smoke: ok');
