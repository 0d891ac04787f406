// The hall console end to end, in Debian's Chromium, against the real core and a real relay: no
// mocked IPC. Two `gridwalk-bridge` devices: a walker's phone (390 × 844) and the hall PC
// (1366 × 768, enrolled with the hall role).
//
// A walker raises a request (and a duplicate of it) on her phone; it syncs; on the hall PC it
// appears in the inbox, the duplicate is merged into it (suggested by `duplicates`), it is
// accepted, assigned to an office with a deadline and resolved with an "after" photo; the phone
// receives the resolution, the walker reports back and records the resident's rating; the hall's
// dashboard resolution rate (and satisfaction rate) move by exactly one request. The monthly list
// is shown, exported to XLSX (downloaded, and saved on the hall PC) and laid out for printing; a
// grid meeting is recorded when the app has the meeting commands.
//
// What a person reads is checked on the way: no two texts of a dashboard chart overlap, and none
// is cut off, at 1366 × 768, at 1920 × 1080 and in English (boxes from each chart's zrender
// display list, since ECharts draws onto a canvas); breakdowns show at most ten bars, the rest in
// a list; coverage lists count households in 户 and enterprises in 家; table rows open their
// request from anywhere on the row and with Enter; a deadline with a bad year is called not a
// valid date (not missing); the countdown shows only while the request is open; the overdue
// view's 逾期天数 equals its "超期 N 天"; a meeting decision reads as 议事决定 in the history.
// No screen's visible text holds a uuid, a device id or an office id (e2e/visible.mjs); the inbox
// names the grid; a merge target is picked from the suggestions or found by its words (no box for
// a number) and the history names it by its description, as a link; the hall's steps are signed
// with its name and its device in short; the assignee is picked among the grid's walkers; a
// meeting names the requests it discussed by their descriptions.
//
// Screenshots: target/test-output/hall-*.png
// Run: node ui/e2e/hall.mjs   (after `cd ui && npm run build` and
//      `cargo build -p gridwalk-bridge -p gridwalk-cli -p gridwalk-relay`)
import { chromium } from 'playwright-core';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ADMIN, BIN, CHARTS_DRAWN, CHART_TEXTS, CJK_RENDER_CHECK, CJK_SAMPLE, OUT, ROOT, SHIPPED_FONT, STAFF, assert, assertCjkRenders, chartLabelProblems, hallWithTown, relayCli, sleep,
  startListening, startRelay, stop, tempDir, png,
} from '../../tests/e2e/lib.mjs';
import jsQR from 'jsqr';
import { assertNoMachineIds } from './visible.mjs';

const GRID = 'v01-g01';
const tid = (id) => `[data-testid="${id}"]`;

function device(dir, name) {
  return startListening(join(BIN, 'gridwalk-bridge'), [
    '--data-dir', join(dir, name), '--listen', '127.0.0.1:0', '--ui', join(ROOT, 'ui/dist'), '--check-every-s', '0.5',
    // The phone is driven mostly through its commands here: it must not lock itself meanwhile
    // (the lock has its own test, ui/e2e/lock.mjs).
    '--lock-after-s', '3600',
  ]);
}

async function api(dev, cmd, args = {}) {
  const res = await fetch(`${dev.url}/api/${cmd}`, { method: 'POST', body: JSON.stringify(args), headers: { 'content-type': 'application/json' } });
  const body = await res.json();
  if (!res.ok) {
    const err = new Error(`${cmd}: ${body.code}: ${body.message}`);
    err.code = body.code;
    throw err;
  }
  return body;
}

/** Asks a device to sync and waits until a sync that started after now has finished. */
async function syncNow(dev, what) {
  const before = (await api(dev, 'status')).last_sync_at ?? 0;
  await sleep(5); // a sync finishing in this same millisecond would not be told apart
  await api(dev, 'sync_now');
  const start = Date.now();
  for (;;) {
    const s = await api(dev, 'status');
    if ((s.last_sync_at ?? 0) > before && !s.syncing && s.pending_documents === 0 && s.pending_photos === 0 && !s.processing_photos) return s;
    if (Date.now() - start > 60000) throw new Error(`timed out syncing (${what}): ${JSON.stringify(s.last_error)}`);
    await sleep(200);
  }
}

/** Signs a staff member in on the hall PC's sign-in screen: her name, then her PIN. */
async function signIn(page, staff) {
  await page.locator(`${tid('sign-in-person')}[data-person="${staff.id}"]`).click();
  await page.locator(tid('sign-in-pin')).fill(staff.pin);
  await page.locator(tid('sign-in-submit')).click();
  await page.locator(`${tid('signed-in')}[data-person="${staff.id}"]`).waitFor({ timeout: 15000 });
  assert((await page.locator(tid('signed-in-name')).innerText()).trim() === staff.name, `signed in as ${staff.name}`);
}

async function until(what, fn, ms = 60000) {
  const start = Date.now();
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() - start > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(300);
  }
}

function pct(rate) {
  return (Math.round(rate * 1000) / 10).toFixed(1).replace(/\.0$/, '') + '%';
}

/** The texts each dashboard chart drew, as rectangles in the chart's canvas (see CHART_TEXTS). */
async function chartTexts(page) {
  return page.evaluate(`(${CHART_TEXTS})()`);
}

/**
 * At the page's current size: every chart has drawn (at its element's width), none of its texts
 * overlaps another, and none is cut off at the chart's edge.
 */
async function assertChartsReadable(page, what) {
  await page.waitForFunction(`(${CHARTS_DRAWN})()`, null, { timeout: 30000 }).catch(async (e) => {
    const state = await page.evaluate(() => [...document.querySelectorAll('[data-testid^="chart-"]')].map((d) =>
      `${d.getAttribute('data-testid')}: instance ${!!d.__chart}, drawn ${d.getAttribute('data-drawn')}, width ${d.__chart?.getWidth()} in ${d.clientWidth}`));
    throw new Error(`the charts did not finish drawing at ${what}: ${state.join('; ')}`, { cause: e });
  });
  await sleep(300); // a resize's last frame
  const charts = await chartTexts(page);
  const problems = chartLabelProblems(charts);
  const counted = charts.map((c) => `${c.id} ${c.texts.length}`).join(', ');
  assert(!problems.length, `chart labels at ${what} must not overlap:\n  ${problems.slice(0, 30).join('\n  ')}${problems.length > 30 ? `\n  … ${problems.length - 30} more` : ''}`);
  console.log(`charts at ${what}: no label overlaps (${counted} texts)`);
}

async function main() {
  const dir = tempDir('hall');
  const relayDir = join(dir, 'relay');
  const relay = await startRelay(relayDir);
  const devices = [];
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  try {
    hallWithTown(dir, relayDir, relay.url);
    const phone = await device(dir, 'phone');
    const hall = await device(dir, 'hall-pc');
    devices.push(phone, hall);

    // 1. The walker's phone, enrolled for her grid; she raises a request and, a little later, a
    //    neighbour's report of the same streetlight.
    await api(phone, 'enroll', { relay_url: relay.url, code: relayCli(relayDir, 'enroll', '--name', '王芳的手机', '--grids', GRID, '--walker', 'w001'), device_name: '王芳的手机', pin: '2580' });
    await until('the phone\'s first sync', async () => (await api(phone, 'status')).last_sync_at);
    const stamp = Date.now() % 100000;
    const description = `马社村3组门口路灯不亮一周了 ${stamp}`;
    const { id } = await api(phone, 'raise_request', {
      grid: GRID, category: 'streetlight', description, urgency: 'normal', address: '马社村3组12号门口',
      reporter: { kind: 'resident', name: '张大爷' },
    });
    const { id: dupId } = await api(phone, 'raise_request', {
      grid: GRID, category: 'streetlight', description: `3组门口路灯坏了晚上不亮 ${stamp}`, urgency: 'normal', address: '马社村3组12号',
      reporter: { kind: 'anonymous' },
    });
    await syncNow(phone, 'phone up');

    // 2. The hall PC enrols in the browser at 1366 × 768 with the hall role.
    const ctx = await browser.newContext({ viewport: { width: 1366, height: 768 }, locale: 'zh-CN', acceptDownloads: true });
    const page = await ctx.newPage();
    page.on('pageerror', (e) => console.error('hall page error:', e.message));
    await page.goto(hall.url);
    await page.locator(tid('enroll-relay')).waitFor();
    await assertNoMachineIds(page, 'hall: enrol screen');
    await page.locator(tid('enroll-relay')).fill(relay.url);
    await page.locator(tid('enroll-code')).fill(relayCli(relayDir, 'enroll', '--name', '前台电脑', '--role', 'hall'));
    await page.locator(tid('enroll-device')).fill('前台电脑');
    await page.locator(tid('enroll-submit')).click();
    // The first sync brings the staff roster: this PC is shared, so its staff sign in.
    await page.locator(tid('screen-sign-in')).waitFor({ timeout: 30000 });
    await page.screenshot({ path: join(OUT, 'hall-sign-in.png') });
    await assertNoMachineIds(page, 'hall: sign-in');
    await signIn(page, STAFF[0]);
    await page.locator(tid('app-shell') + '[data-layout="desktop"]').waitFor({ timeout: 30000 });
    await page.locator(tid('side-nav')).waitFor();
    assert(!(await page.locator(tid('tab-grids')).count()), 'no bottom tabs on the hall PC');
    await until('the hall PC to receive the request', async () => {
      await api(hall, 'sync_now');
      return (await api(hall, 'inbox', { limit: 500 })).items.some((r) => r.id === id) && (await api(hall, 'request', { id: dupId }).catch(() => null));
    });
    await syncNow(hall, 'hall first');
    const before = (await api(hall, 'dashboard', { scope: { kind: 'all' } })).figures;

    // 3. The inbox shows both, newest first, with the first receiver as owner.
    await page.locator(tid('nav-inbox')).click();
    await page.locator(tid('inbox-refresh')).click();
    const row = page.locator(`${tid('inbox-item')}[data-request-id="${id}"]`);
    await row.waitFor({ timeout: 30000 });
    await page.locator(`${tid('inbox-item')}[data-request-id="${dupId}"]`).waitFor();
    const owner = await row.locator(tid('inbox-owner')).innerText();
    assert(owner.trim().length > 0, 'the inbox shows the first receiver');
    // The grid by its name, not its code.
    const gridName = (await api(hall, 'grids')).find((g) => g.id === GRID).name;
    await row.locator(tid('inbox-grid')).filter({ hasText: gridName }).waitFor({ timeout: 15000 });
    await page.screenshot({ path: join(OUT, 'hall-inbox.png'), fullPage: true });
    await assertNoMachineIds(page, 'hall: inbox');

    // 4. The duplicate: merge, into the request the suggestions name first.
    //    The whole row opens it: a click on its address cell, away from the description's link.
    await page.locator(`${tid('inbox-item')}[data-request-id="${dupId}"] td`).nth(5).click();
    await page.locator(`${tid('screen-hall-request')}[data-request-id="${dupId}"]`).waitFor();
    await page.locator(tid('triage-panel')).waitFor();
    await page.locator(tid('request-timeline')).waitFor();
    await assertNoMachineIds(page, 'hall: a new request');
    await page.locator(tid('triage-merge_into')).click();
    const suggestion = page.locator(tid('duplicate-item')).first();
    await suggestion.waitFor();
    await assertNoMachineIds(page, 'hall: merge with its suggestions');
    assert((await suggestion.getAttribute('data-request-id')) === id, 'the original is the first suggested duplicate');
    // The only box to type in is the search by words: no field takes a request's number.
    const boxes = await page.locator(`${tid('triage-panel')} input:not([type="radio"]), ${tid('triage-panel')} textarea`).evaluateAll((els) => els.map((e) => e.getAttribute('data-testid')));
    assert(boxes.length === 1 && boxes[0] === 'merge-search', `fields of the merge: ${boxes}`);
    // Any other request of the grid is found by what it says, and chosen by its description.
    const other = (await api(hall, 'requests', { grid: GRID, limit: 50 })).items.find((r) => r.id !== id && r.id !== dupId && r.description.length >= 6);
    await page.locator(tid('merge-search')).fill(other.description.slice(0, 6));
    await page.locator(tid('merge-search-submit')).click();
    const found = page.locator(`${tid('merge-result')}[data-request-id="${other.id}"]`);
    await found.waitFor();
    await found.locator('input').check();
    await page.locator(tid('merge-chosen-request')).filter({ hasText: other.description.slice(0, 10) }).waitFor();
    await assertNoMachineIds(page, 'hall: merge, searched');
    await page.screenshot({ path: join(OUT, 'hall-merge-search.png') });
    // The suggestion it is, in the end.
    await suggestion.locator('input').check();
    await page.locator(tid('merge-chosen-request')).filter({ hasText: description.slice(0, 10) }).waitFor();
    await page.locator(tid('triage-submit')).click();
    await page.locator(tid('hall-status') + '[data-status="merged"]').waitFor();
    await page.locator(`${tid('timeline-event')}[data-type="triaged"]`).waitFor();
    await assertNoMachineIds(page, 'hall: a merged request');
    // The history names the request it went into by its description, as a link to it; the hall
    // PC's step is signed with the name of who was signed in, and the device in short.
    const mergedInto = page.locator(`${tid('timeline-event')}[data-type="triaged"] ${tid('timeline-request')}`);
    await mergedInto.filter({ hasText: description.slice(0, 10) }).waitFor();
    const hallWho = await page.locator(`${tid('timeline-event')}[data-type="triaged"] ${tid('timeline-who')}`).innerText();
    assert(hallWho.includes(STAFF[0].name) && /设备尾号 [0-9a-f]{4}/.test(hallWho), `the hall's step is signed: ${hallWho}`);
    await page.locator(`${tid('timeline-event')}[data-type="triaged"]`).scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(OUT, 'hall-merged.png') });
    await mergedInto.click();
    await page.locator(`${tid('screen-hall-request')}[data-request-id="${id}"]`).waitFor();
    // The original lists the duplicate merged into it, by its words: its reporter is owed an answer.
    await page.locator(`${tid('detail-duplicates')}[data-count="1"] ${tid('detail-duplicate-link')}[data-request-id="${dupId}"]`).waitFor({ timeout: 15000 });
    await assertNoMachineIds(page, 'hall: the original with its duplicate');

    // 5. The original: accept, assign (office, person, deadline, level), resolve with an after photo.
    await page.goto(`${hall.url}/#/hall/request/${id}`);
    await page.locator(tid('triage-panel')).waitFor();
    await page.locator(tid('triage-accept')).click();
    await page.locator(tid('triage-submit')).click();
    await page.locator(tid('hall-status') + '[data-status="accepted"]').waitFor();
    await assertNoMachineIds(page, 'hall: an accepted request');
    // 陈 hands the desk to 王, who signs in on the same PC and assigns it in her own name.
    await page.locator(tid('sign-out')).click();
    await page.locator(tid('screen-sign-in')).waitFor();
    await signIn(page, STAFF[1]);
    await page.goto(`${hall.url}/#/hall/request/${id}`);
    await page.locator(tid('hall-status') + '[data-status="accepted"]').waitFor();
    const office = await page.locator(`${tid('assign-department')} option`).nth(1).getAttribute('value');
    await page.locator(tid('assign-department')).selectOption(office);
    // The person is picked from the grid's walkers (typing a name still works).
    const pick = page.locator(tid('assign-person-pick')).first();
    const assignee = (await pick.innerText()).trim();
    await pick.click();
    assert((await page.locator(tid('assign-person')).inputValue()) === assignee, 'a tap on a walker fills in the person');
    await page.locator(tid('assign-level')).selectOption('village');
    // A deadline with a wrong year is called not a valid date, not a missing one.
    const deadlineField = page.locator(tid('assign-deadline'));
    const chosenDeadline = await deadlineField.inputValue();
    const missingText = '请填写办理期限';
    await deadlineField.fill(`2${chosenDeadline}`);
    await page.locator(tid('assign-submit')).click();
    const deadlineError = page.locator(tid('assign-deadline-error'));
    await deadlineError.waitFor();
    let said = (await deadlineError.innerText()).trim();
    assert((await deadlineError.getAttribute('data-problem')) === 'invalid' && said.includes('不是有效的日期') && !said.includes(missingText), `a five-digit year: "${said}"`);
    await deadlineField.fill(chosenDeadline);
    assert(!(await deadlineError.count()), 'the message goes once the date is typed again');
    // A part of the date wiped in the field (the browser's date format decides which part comes
    // first): the field then gives the page nothing, and says so only through `badInput`.
    const field = await deadlineField.boundingBox();
    await page.mouse.click(field.x + 14, field.y + field.height / 2);
    await page.keyboard.press('Backspace');
    assert(await deadlineField.evaluate((e) => e.value === '' && e.validity.badInput), 'the date field holds an incomplete date');
    await page.locator(tid('assign-submit')).click();
    await deadlineError.waitFor();
    said = (await deadlineError.innerText()).trim();
    assert((await deadlineError.getAttribute('data-problem')) === 'invalid' && !said.includes(missingText), `an incomplete date: "${said}"`);
    await page.screenshot({ path: join(OUT, 'hall-deadline-invalid.png') });
    assert((await page.locator(tid('hall-status')).getAttribute('data-status')) === 'accepted', 'nothing was assigned with a bad date');
    await deadlineField.fill(chosenDeadline);
    await page.locator(tid('assign-submit')).click();
    await page.locator(tid('hall-status') + '[data-status="assigned"]').waitFor();
    await page.locator(`${tid('timeline-event')}[data-type="assigned"]`).waitFor();
    await assertNoMachineIds(page, 'hall: an assigned request');
    assert((await page.locator(tid('detail-assignee')).innerText()).trim() === assignee, `the assignee: ${await page.locator(tid('detail-assignee')).innerText()}`);
    // While it is open the deadline counts down; the countdown is what a person reads there.
    const countdown = page.locator(`${tid('detail-deadline')} ${tid('detail-countdown')}`);
    await countdown.waitFor();
    assert(/还剩 \d+ 天|今天到期/.test(await countdown.innerText()), `the countdown of an open request: ${await countdown.innerText()}`);
    await page.locator(tid('progress-note')).fill('已联系村电工，明天上门');
    await page.locator(tid('progress-submit')).click();
    await page.locator(`${tid('timeline-event')}[data-type="progress"]`).waitFor();
    await page.locator(tid('resolve-note')).fill('更换灯头，路灯已恢复照明');
    await page.locator(tid('resolve-photo-input')).setInputFiles({ name: 'after.png', mimeType: 'image/png', buffer: png(320, 240) });
    await page.locator(tid('resolve-submit')).click();
    await page.locator(tid('hall-status') + '[data-status="resolved"]').waitFor();
    // The after photo is processed in the background and turns into a thumbnail by itself.
    await page.locator(tid('photo-thumb')).first().waitFor();
    await until('the after photo to be attached', async () => {
      const d = await api(hall, 'request', { id });
      return d.photos.some((p) => p.role === 'after') && !(d.waiting_photos ?? []).length;
    });
    await page.locator(tid('waiting-photo')).waitFor({ state: 'detached', timeout: 30000 });
    // Resolved: the deadline is still shown, without "还剩 N 天".
    await page.locator(`${tid('detail-status')}[data-status="resolved"]`).waitFor();
    const deadlineShown = await page.locator(tid('detail-deadline')).innerText();
    assert(!(await countdown.count()) && !/还剩|超期|到期/.test(deadlineShown), `no countdown once resolved: ${deadlineShown}`);
    await page.locator(`${tid('timeline-event')}[data-type="resolved"]`).waitFor();
    await assertNoMachineIds(page, 'hall: a resolved request');
    await page.screenshot({ path: join(OUT, 'hall-request-resolved.png'), fullPage: true });
    const detail = await api(hall, 'request', { id });
    assert(detail.photos.some((p) => p.role === 'after'), 'the after photo is on the request');
    assert(detail.department === office && detail.level === 'village', 'assigned to the office at village level');

    // 6. The dashboard's resolution rate moved by exactly this request.
    const expected = { num: before.resolved + 1, den: before.handled + 1 };
    await page.locator(tid('nav-dashboard')).click();
    const kpi = page.locator(tid('kpi-resolution_rate'));
    await page.locator(`${tid('kpi-resolution_rate')}[data-num="${expected.num}"][data-den="${expected.den}"]`).waitFor({ timeout: 30000 });
    const shown = await kpi.getAttribute('data-value');
    assert(shown === pct(expected.num / expected.den), `resolution rate ${shown}, expected ${pct(expected.num / expected.den)} (was ${pct(before.resolved / before.handled)})`);
    console.log(`resolution rate: ${before.resolved}/${before.handled} = ${pct(before.resolved / before.handled)} → ${expected.num}/${expected.den} = ${shown}`);
    // Each KPI shows its change since last week and last month (issue 16), as the core counts
    // the figures then: the requests raised today are in "now" and not in "a week ago".
    {
      const changes = await api(hall, 'kpi_changes', { scope: { kind: 'all' } });
      const nowFigures = (await api(hall, 'dashboard', { scope: { kind: 'all' } })).figures;
      const weekTotal = nowFigures.total - changes.week_ago.figures.total;
      assert(weekTotal >= 2, `at least the two requests raised today are new since last week: ${weekTotal}`);
      const weekShown = (await page.locator(tid('kpi-change-week-total')).innerText()).trim();
      assert(weekShown === `比上周 +${weekTotal}`, `the total's change since last week: "${weekShown}", expected +${weekTotal}`);
      const monthRate = (await page.locator(tid('kpi-change-month-resolution_rate')).innerText()).trim();
      assert(/^比上月 ([+−]\d+(\.\d)?|±0)个百分点$/.test(monthRate), `the resolution rate's change since last month, in points: "${monthRate}"`);
      // Each change is on one line inside its card, at 1366 × 768: nothing spills out.
      const spilled = await page.locator('[data-testid^="kpi-change-"]').evaluateAll((els) =>
        els.filter((e) => e.isConnected).filter((e) => {
          const card = e.closest('button').getBoundingClientRect();
          const r = e.getBoundingClientRect();
          // Two lines are at least twice the font size high.
          return r.right > card.right - 2 || r.height >= parseFloat(getComputedStyle(e).fontSize) * 2;
        }).map((e) => e.textContent));
      assert(spilled.length === 0, `KPI changes spilling out of their cards or wrapped: ${spilled}`);
      console.log(`KPI changes: total ${weekShown}; resolution rate ${monthRate}`);
    }
    // It drills down to the list behind it, which holds this request.
    await kpi.click();
    await page.locator(`${tid('drill-total')}[data-total="${expected.num}"]`).waitFor();
    assert(/^共 \d+ 件$/.test((await page.locator(tid('drill-total')).innerText()).trim()), 'requests are counted in 件');
    await page.locator(tid('chart-trend') + ' canvas').waitFor();
    // The desktop dashboard draws Chinese with the shipped font too (the charts are told it).
    assertCjkRenders(
      await page.evaluate(`(${CJK_RENDER_CHECK})(${JSON.stringify(SHIPPED_FONT)}, ${JSON.stringify(CJK_SAMPLE)})`),
      'Chromium, hall dashboard',
    );
    await page.evaluate(() => window.scrollTo(0, 0));
    // No chart label sits on another, on the hall PC's screen and on a large one.
    await assertChartsReadable(page, '1366×768');
    await page.screenshot({ path: join(OUT, 'hall-dashboard.png'), fullPage: true });
    await assertNoMachineIds(page, 'hall: dashboard with the resolved list');
    await page.setViewportSize({ width: 1920, height: 1080 });
    await assertChartsReadable(page, '1920×1080');
    await page.screenshot({ path: join(OUT, 'hall-dashboard-1920.png'), fullPage: true });
    await page.setViewportSize({ width: 1366, height: 768 });
    const drill = await api(hall, 'drill', { scope: { kind: 'all' }, what: 'requests', measure: 'resolved', slice: { by: 'all' }, limit: 500 });
    assert(drill.ids.includes(id), 'the resolved list holds the request');

    // A breakdown with more than ten rows shows the ten with the most requests; the rest are in
    // the list under it, whose rows open the requests behind them.
    const board = await api(hall, 'dashboard', { scope: { kind: 'all' } });
    for (const [by, testid, rows] of [['category', 'chart-category', board.by_category], ['department', 'chart-office', board.by_department], ['grid', 'chart-grid', board.by_grid]]) {
      const bars = await page.locator(tid(testid)).evaluate((el) => el.__chart.getOption().yAxis[0].data.length);
      assert(bars === Math.min(10, rows.length), `${testid}: ${bars} bars for ${rows.length} rows`);
      assert((await page.locator(`${tid('breakdown-more')}[data-by="${by}"]`).count()) === (rows.length > 10 ? 1 : 0), `${testid}: a full list only when bars were left out`);
    }
    const many = [['category', board.by_category], ['department', board.by_department], ['grid', board.by_grid]].find(([, rows]) => rows.length > 10);
    if (many) {
      const [by, rows] = many;
      await page.locator(`${tid('breakdown-more')}[data-by="${by}"]`).click();
      const list = page.locator(`${tid('breakdown-list')}[data-by="${by}"] ${tid('breakdown-row')}`);
      await list.first().waitFor();
      assert((await list.count()) === rows.length, `the full list has all ${rows.length} rows`);
      const last = rows.reduce((a, b) => (b.total < a.total ? b : a));
      await page.screenshot({ path: join(OUT, 'hall-dashboard-list.png'), fullPage: true });
      await list.last().press('Enter');
      await page.locator(`${tid('drill-total')}[data-total="${last.total}"]`).waitFor();
      await page.locator(`${tid('breakdown-more')}[data-by="${by}"]`).click();
    } else {
      console.log('no breakdown has more than ten rows here: the full list is not exercised');
    }
    // Coverage: households are counted in 户, enterprises in 家.
    await page.locator(tid('cov-households_not_visited')).click();
    await page.locator(`${tid('drill-list')}[data-kind="household"]`).waitFor();
    await assertNoMachineIds(page, 'hall: households not visited');
    assert(/^共 \d+ 户$/.test((await page.locator(tid('drill-total')).innerText()).trim()), `households: ${await page.locator(tid('drill-total')).innerText()}`);
    await page.locator(tid('cov-enterprises_not_visited')).click();
    await page.locator(`${tid('drill-total')}`).filter({ hasText: '家' }).waitFor();
    await assertNoMachineIds(page, 'hall: enterprises not visited');
    // A row of the list behind a figure opens its request, from anywhere on the row.
    await page.locator(tid('kpi-resolution_rate')).click();
    const drillRow = page.locator(`${tid('drill-item')}[data-id="${id}"]`);
    await drillRow.waitFor();
    await drillRow.locator('td').first().click();
    await page.locator(`${tid('screen-hall-request')}[data-request-id="${id}"]`).waitFor();
    await page.locator(tid('request-timeline')).waitFor();
    await assertNoMachineIds(page, 'hall: a request opened from the dashboard');
    await page.locator(tid('nav-dashboard')).click();
    await page.locator(tid('dash-refresh')).waitFor();

    // 7. The phone receives the resolution; the walker reports back and records the rating.
    await syncNow(hall, 'hall up');
    await until('the phone to see the resolution', async () => {
      await syncNow(phone, 'phone down');
      return (await api(phone, 'request', { id })).status === 'resolved';
    });
    // On the phone too, each step carries the name of the staff member who took it.
    const seen = (await api(phone, 'request', { id })).history;
    const by = (type) => seen.find((h) => h.type === type)?.actor;
    assert(by('triaged') === STAFF[0].name && by('assigned') === STAFF[1].name, `each step by its person on the phone: ${by('triaged')}, ${by('assigned')}`);
    console.log(`two staff on one hall PC: accepted by ${by('triaged')}, assigned by ${by('assigned')}, as the phone shows`);
    const pctx = await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, locale: 'zh-CN', hasTouch: true });
    const ppage = await pctx.newPage();
    ppage.on('pageerror', (e) => console.error('phone page error:', e.message));
    await ppage.goto(`${phone.url}/#/request/${id}`);
    await ppage.locator(tid('detail-status') + '[data-status="resolved"]').waitFor({ timeout: 30000 });
    await assertNoMachineIds(ppage, 'phone: the resolved request');
    await ppage.locator(tid('feedback-note')).fill('已告知张大爷路灯修好了');
    await ppage.locator(tid('feedback-submit')).click();
    await ppage.locator(tid('detail-status') + '[data-status="feedback_given"]').waitFor();
    await ppage.locator(tid('rating-satisfied')).click();
    await ppage.locator(tid('rating-submit')).click();
    await ppage.locator(tid('detail-status') + '[data-status="rated"]').waitFor();
    await ppage.screenshot({ path: join(OUT, 'hall-phone-rated.png'), fullPage: true });
    await assertNoMachineIds(ppage, 'phone: the rated request');
    await syncNow(phone, 'phone rating up');
    await until('the hall to see the rating', async () => {
      await syncNow(hall, 'hall down');
      return (await api(hall, 'request', { id })).status === 'rated';
    });
    // The duplicate's reporter is owed the outcome too (issue 16): now that the request it went
    // into is resolved, the phone lists it under 待反馈, and it takes a feedback step of its own,
    // staying merged (out of every rate).
    {
      await until('the phone to hold the merge', async () => {
        await syncNow(phone, 'phone down');
        return (await api(phone, 'request', { id: dupId })).status === 'merged';
      });
      await ppage.locator(tid('tab-requests')).click();
      await ppage.locator(tid('request-filter-resolved')).click();
      const owed = ppage.locator(`${tid('request-item')}[data-request-id="${dupId}"]`);
      // The list of every request was on screen a moment ago: wait for 待反馈's own.
      await until('待反馈 to list the duplicate and not the original, told and rated', async () =>
        (await owed.count()) === 1 && (await ppage.locator(`${tid('request-item')}[data-request-id="${id}"]`).count()) === 0);
      const owedStatuses = await ppage.locator(tid('request-item')).evaluateAll((els) => els.map((e) => e.dataset.status));
      assert(owedStatuses.every((st) => st === 'resolved' || st === 'merged'), `待反馈 lists only resolved requests and merged duplicates: ${owedStatuses}`);
      await ppage.screenshot({ path: join(OUT, 'hall-phone-owed-feedback.png'), fullPage: true });
      await assertNoMachineIds(ppage, 'phone: requests owed feedback');
      await owed.click();
      await ppage.locator(`${tid('screen-request')}[data-request-id="${dupId}"]`).waitFor();
      await ppage.locator(tid('duplicate-feedback-hint')).waitFor();
      await ppage.locator(tid('feedback-note')).fill('已告知邻居：这盏路灯已经修好');
      await ppage.locator(tid('feedback-submit')).click();
      await ppage.locator(tid('doorstep-actions')).waitFor({ state: 'detached' });
      assert((await ppage.locator(tid('detail-status')).getAttribute('data-status')) === 'merged', 'a told duplicate stays merged');
      await ppage.locator(`${tid('timeline-event')}[data-type="feedback_given"]`).waitFor();
      await ppage.screenshot({ path: join(OUT, 'hall-phone-duplicate-told.png'), fullPage: true });
      await assertNoMachineIds(ppage, 'phone: a told duplicate');
      await syncNow(phone, 'phone duplicate feedback up');
      await until('the hall to see the duplicate told', async () => {
        await syncNow(hall, 'hall down');
        return (await api(hall, 'request', { id })).duplicates.every((d) => d.told);
      });
      await page.goto(`${hall.url}/#/hall/request/${id}`);
      await page.locator(`${tid('detail-duplicate-told')}[data-told="yes"]`).waitFor({ timeout: 15000 });
      await page.locator(tid('detail-duplicates')).scrollIntoViewIfNeeded();
      await page.screenshot({ path: join(OUT, 'hall-original-duplicate-told.png') });
      await assertNoMachineIds(page, 'hall: the original with its duplicate told');
      console.log('merged duplicate: owed feedback on the phone once its request was resolved, told there, shown as told at the hall');
    }
    const after = (await api(hall, 'dashboard', { scope: { kind: 'all' } })).figures;
    assert(after.resolved === before.resolved + 1 && after.handled === before.handled + 1, 'still resolved after feedback and a satisfied rating');
    assert(after.rated === before.rated + 1 && after.satisfied === before.satisfied + 1, 'the rating counts towards satisfaction');
    await page.locator(tid('nav-dashboard')).click();
    await page.locator(tid('dash-refresh')).click();
    await page.locator(`${tid('kpi-satisfaction_rate')}[data-num="${before.satisfied + 1}"][data-den="${before.rated + 1}"]`).waitFor();

    // 8. The monthly list: on screen, exported (downloaded and saved on this PC), printable.
    await page.locator(tid('nav-monthly')).click();
    await page.locator(`${tid('monthly-row')}[data-request-id="${id}"][data-completion="resolved"]`).waitFor({ timeout: 30000 });
    await assertNoMachineIds(page, 'hall: monthly list');
    // This month's list carries over what earlier months left open, marked, counted apart.
    const carriedRows = await page.locator(`${tid('monthly-row')}[data-carried="yes"]`).count();
    const carriedTotal = Number(await page.locator(tid('monthly-carried-total')).getAttribute('data-carried'));
    assert(carriedRows > 0 && carriedRows === carriedTotal, `carried-over rows ${carriedRows} = summary ${carriedTotal}`);
    const mark = await page.locator(`${tid('monthly-row')}[data-carried="yes"] ${tid('monthly-carried')}`).first().innerText();
    assert(/往月结转/.test(mark), `a carried-over row says so: ${mark}`);
    console.log(`monthly list: ${carriedRows} requests carried over from earlier months`);
    await page.locator(tid('monthly-scope')).selectOption(`grid:${GRID}`);
    await page.locator(`${tid('monthly-row')}[data-request-id="${id}"]`).waitFor();
    // Rows open their request with the keyboard too: Tab reaches a row, Enter opens it.
    await page.locator(`${tid('monthly-row')}[data-request-id="${id}"]`).focus();
    await page.keyboard.press('Enter');
    await page.locator(`${tid('screen-hall-request')}[data-request-id="${id}"]`).waitFor();
    await page.goBack();
    await page.locator(`${tid('monthly-row')}[data-request-id="${id}"]`).waitFor();
    await page.locator(tid('monthly-scope')).selectOption(`grid:${GRID}`);
    await page.locator(`${tid('monthly-row')}[data-request-id="${id}"]`).waitFor();
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator(tid('monthly-export')).click()]);
    assert(download.suggestedFilename().endsWith('.xlsx'), `an XLSX file: ${download.suggestedFilename()}`);
    const saved = await page.locator(tid('monthly-saved')).getAttribute('data-path');
    assert(saved && existsSync(saved) && saved.startsWith(join(dir, 'hall-pc', 'exports')), `saved on the hall PC: ${saved}`);
    const downloaded = readFileSync(await download.path());
    assert(downloaded.equals(readFileSync(saved)), 'the download is the saved file');
    assert(downloaded.subarray(0, 2).toString() === 'PK', 'an XLSX is a zip');
    await page.screenshot({ path: join(OUT, 'hall-monthly.png'), fullPage: true });
    await page.emulateMedia({ media: 'print' });
    assert(!(await page.locator(tid('side-nav')).isVisible()), 'no navigation on the printed page');
    await page.pdf({ path: join(OUT, 'hall-monthly.pdf'), format: 'A4', landscape: true, printBackground: true, preferCSSPageSize: true });
    await page.screenshot({ path: join(OUT, 'hall-monthly-print.png'), fullPage: true });
    await page.emulateMedia({ media: 'screen' });

    // 9. The overdue view and the admin lists open.
    await page.locator(tid('nav-overdue')).click();
    await page.locator(tid('screen-overdue')).waitFor();
    // "超期 N 天" under the deadline and the 逾期天数 column say the same N.
    await page.locator(`${tid('work-item')}, ${tid('work-empty')}`).first().waitFor();
    const lateRows = await page.locator(tid('work-item')).evaluateAll((rows) =>
      rows.map((r) => ({ countdown: r.querySelector('[data-testid="work-countdown"]')?.textContent ?? '', column: r.querySelector('[data-testid="work-days-late"]')?.textContent ?? '' })));
    for (const r of lateRows) {
      const n = /超期 (\d+) 天/.exec(r.countdown)?.[1];
      assert(n && n === r.column.trim(), `overdue days agree: "${r.countdown}" vs column "${r.column}"`);
    }
    console.log(`overdue view: ${lateRows.length} rows, countdown and 逾期天数 agree`);
    await page.screenshot({ path: join(OUT, 'hall-overdue.png'), fullPage: true });
    await assertNoMachineIds(page, 'hall: overdue');
    await page.locator(tid('nav-work')).click();
    for (const g of ['to_assign', 'in_progress', 'resolved']) {
      await page.locator(tid('work-group-' + g)).click();
      await page.locator(`${tid('work-item')}, ${tid('work-empty')}`).first().waitFor();
      await assertNoMachineIds(page, `hall: assign (${g})`);
    }
    await page.locator(tid('nav-admin')).click();
    await page.locator(tid('admin-walker')).first().waitFor();
    await assertNoMachineIds(page, 'hall: admin');
    // Staff PINs: 王 (signed in, hall staff) is offered no colleague's PIN — she could then sign
    // in as him — and changes her own only with her current one, which the relay checks. A
    // wrong one is said beside the table, in Chinese.
    {
      const row = (id) => page.locator(`${tid('admin-staff-row')}[data-person="${id}"]`);
      const pinError = page.locator(tid('admin-staff-error'));
      await row(STAFF[1].id).locator(tid('admin-staff-set')).waitFor();
      for (const other of ['hall-3', 'admin', STAFF[0].id]) {
        assert((await row(other).locator(tid('admin-staff-set')).count()) === 0, `no PIN of ${other} offered to hall staff`);
      }
      await row(STAFF[1].id).locator(tid('admin-staff-set')).click();
      await row(STAFF[1].id).locator(tid('admin-staff-my-pin')).fill('0000');
      await row(STAFF[1].id).locator(tid('admin-staff-new-pin')).fill('2468');
      await row(STAFF[1].id).locator(tid('admin-staff-save')).click();
      await pinError.waitFor();
      assert((await pinError.innerText()).includes('PIN 不匹配'), `a wrong current PIN is refused: ${await pinError.innerText()}`);
      await page.locator(tid('admin-staff')).screenshot({ path: join(OUT, 'hall-admin-staff-pins.png') });
      await row(STAFF[1].id).locator(tid('admin-staff-my-pin')).fill(STAFF[1].pin);
      await row(STAFF[1].id).locator(tid('admin-staff-save')).click();
      await pinError.waitFor({ state: 'detached' });
      await row(STAFF[1].id).locator(tid('admin-staff-my-pin')).waitFor({ state: 'detached' });
      console.log('staff PINs: no colleague\'s PIN offered, a wrong current PIN refused (PIN 不匹配), her own changed at the relay');
    }
    // The access log (issue 14): not shown to hall staff; the admin sees the monthly list's
    // export by name, in words, with when.
    {
      assert((await page.locator(tid('access-log')).count()) === 0, 'hall staff do not see the access log');
      await page.locator(tid('sign-out')).click();
      await page.locator(tid('screen-sign-in')).waitFor();
      await signIn(page, ADMIN);
      await page.locator(tid('nav-admin')).click();
      const exported = page.locator(`${tid('access-log-row')}[data-kind="export_monthly"]`).first();
      await exported.waitFor({ timeout: 15000 });
      const who = (await exported.locator(tid('access-log-person')).innerText()).trim();
      const what = (await exported.locator(tid('access-log-kind')).innerText()).trim();
      assert(who === STAFF[1].name && what.includes('驻网办事清单'), `the export is logged by name and in words: ${who} ${what}`);
      // Read from the relay, which holds every device's lines: on which device, by its name.
      const on = (await exported.locator(tid('access-log-device')).innerText()).trim();
      assert(on === '前台电脑', `the export names the PC it was made on: ${on}`);
      await page.locator(tid('access-log')).screenshot({ path: join(OUT, 'hall-admin-access-log.png') });
      await assertNoMachineIds(page, 'hall: admin, access log');
      // Forgotten-PIN hand-overs (issue 14): the admin's card is there, and says when there
      // are none (the lock e2e walks a whole hand-over).
      await page.locator(tid('handover-empty')).waitFor({ timeout: 15000 });
      // As she sees it: the card in the middle of the screen, no message over it.
      if (await page.locator(tid('toast')).count()) await page.locator(`${tid('toast')} button`).click();
      await page.evaluate(() => document.querySelector('[data-testid="handovers"]').scrollIntoView({ block: 'center' }));
      await sleep(200);
      await page.locator(tid('handovers')).screenshot({ path: join(OUT, 'hall-admin-handovers.png') });

      // A walker forgot her phone's PIN (issue 14): her new enrolment asks for what her old
      // records held, and it waits until the admin, having seen her, confirms at this console
      // with her own PIN (a wrong one first).
      const forgetful = await device(dir, 'phone-forgot');
      devices.push(forgetful);
      const walkerName = (await api(hall, 'reference')).walkers.find((w) => w.id === 'w001').name;
      const enrolAs = (name) => ({ relay_url: relay.url, code: relayCli(relayDir, 'enroll', '--name', name, '--grids', GRID, '--walker', 'w001'), device_name: name, pin: '1357' });
      await api(forgetful, 'enroll', enrolAs(`${walkerName}的备用手机`));
      await until('the spare phone\'s first sync (its key escrowed)', async () => (await api(forgetful, 'status')).last_sync_at);
      await api(forgetful, 'lock');
      await api(forgetful, 'set_store_aside', { confirm: true });
      await api(forgetful, 'enroll', enrolAs(`${walkerName}的备用手机（重新登记）`));
      await until('the hand-over asked for', async () => (await api(forgetful, 'status')).held_stores?.[0]?.state === 'pending');
      await page.locator(tid('handover-refresh')).click();
      const pending = page.locator(`${tid('handover-row')}[data-state="pending"]`);
      await pending.waitFor({ timeout: 15000 });
      const walkerShown = (await pending.locator(tid('handover-walker')).innerText()).trim();
      const devicesShown = (await pending.locator(tid('handover-devices')).innerText()).trim();
      assert(walkerShown === walkerName && devicesShown === `${walkerName}的备用手机 → ${walkerName}的备用手机（重新登记）`, `the hand-over by names: ${walkerShown}, ${devicesShown}`);
      await pending.locator(tid('handover-confirm-open')).click();
      await page.locator(tid('handover-pin')).fill('0000');
      await page.locator(tid('handover-confirm')).click();
      await page.locator(tid('handover-confirm-error')).waitFor();
      await page.locator(tid('handover-pin')).fill(ADMIN.pin);
      await page.evaluate(() => document.querySelector('[data-testid="handovers"]').scrollIntoView({ block: 'center' }));
      await page.locator(tid('handovers')).screenshot({ path: join(OUT, 'hall-admin-handover-confirm.png') });
      await page.locator(tid('handover-confirm')).click();
      await page.locator(`${tid('handover-row')}[data-state="released"]`).waitFor({ timeout: 15000 });
      await assertNoMachineIds(page, 'hall: admin, a hand-over confirmed');
      await until('the new enrolment to take the old records over', async () => {
        await api(forgetful, 'sync_now');
        return (await api(forgetful, 'status')).held_stores?.[0]?.state === 'done';
      });
      await page.locator(tid('handover-refresh')).click();
      await page.locator(`${tid('handover-row')}[data-state="done"]`).waitFor({ timeout: 15000 });
      if (await page.locator(tid('toast')).count()) await page.locator(`${tid('toast')} button`).click();
      await page.evaluate(() => document.querySelector('[data-testid="handovers"]').scrollIntoView({ block: 'center' }));
      await page.locator(tid('handovers')).screenshot({ path: join(OUT, 'hall-admin-handover-done.png') });
      console.log('forgotten PIN: the hand-over listed by names, a wrong admin PIN refused, confirmed at the console, taken over by the new enrolment');

      // Quick phrases for visit notes are the hall's (issue 16): the admin's list reaches the
      // walker's phone with its grid's roster, and its visit form offers them.
      await page.locator(tid('admin-phrases-text')).fill('已查看燃气灶\n\n子女每周来看望');
      await page.locator(tid('admin-phrases-save')).click();
      await until('the phrases saved', async () => (await page.locator(tid('admin-phrases-text')).inputValue()) === '已查看燃气灶\n子女每周来看望');
      await page.locator(tid('admin-phrases')).screenshot({ path: join(OUT, 'hall-admin-phrases.png') });
      await until('the phone to receive the hall\'s phrases', async () => {
        await syncNow(hall, 'hall phrases up');
        await syncNow(phone, 'phone phrases down');
        return JSON.stringify(await api(phone, 'quick_phrases')) === JSON.stringify(['已查看燃气灶', '子女每周来看望']);
      });
      const place = (await api(phone, 'places', { grid: GRID }))[0];
      await ppage.goto(`${phone.url}/#/place/${GRID}/${place.id}`);
      await ppage.locator(tid('visit-new')).click();
      await ppage.locator(tid('visit-phrase')).first().waitFor();
      const offeredPhrases = await ppage.locator(tid('visit-phrase')).allInnerTexts();
      assert(JSON.stringify(offeredPhrases) === JSON.stringify(['已查看燃气灶', '子女每周来看望']), `the visit form offers the hall's phrases: ${offeredPhrases}`);
      await ppage.locator(tid('visit-phrase')).nth(1).click();
      assert((await ppage.locator(tid('visit-notes')).inputValue()) === '子女每周来看望', 'a tap puts the phrase in the notes');
      await ppage.screenshot({ path: join(OUT, 'hall-phone-hall-phrases.png'), fullPage: true });
      console.log(`quick phrases: set at the hall, offered on the phone: ${offeredPhrases.join(' / ')}`);

      // Enrolment by QR from the hall console (issue 16): the admin issues a code for a walker's
      // new phone with her PIN; the QR code on screen holds the relay's address and that code,
      // and the code enrols a device at the relay.
      const enrol = page.locator(tid('enrol-device'));
      await enrol.locator(tid('enrol-device-walker')).selectOption('w001');
      assert((await enrol.locator(tid('enrol-device-name')).inputValue()).endsWith('的手机'), 'the device is named after its walker');
      await enrol.locator(tid('enrol-device-pin')).fill('0000');
      await enrol.locator(tid('enrol-device-issue')).click();
      await enrol.locator(tid('enrol-device-error')).waitFor();
      await enrol.locator(tid('enrol-device-pin')).fill(ADMIN.pin);
      await enrol.locator(tid('enrol-device-issue')).click();
      const qrImage = enrol.locator(tid('enrol-device-qr'));
      await qrImage.waitFor();
      const shownCode = (await enrol.locator(tid('enrol-device-code')).innerText()).trim();
      const pixels = await qrImage.evaluate((img) => {
        const c = document.createElement('canvas');
        c.width = img.naturalWidth;
        c.height = img.naturalHeight;
        const g = c.getContext('2d');
        g.drawImage(img, 0, 0);
        return { data: Array.from(g.getImageData(0, 0, c.width, c.height).data), width: c.width, height: c.height };
      });
      const read = jsQR(Uint8ClampedArray.from(pixels.data), pixels.width, pixels.height)?.data;
      assert(read === `gridwalk:enrol?relay=${relay.url.replace(/\/$/, '')}&code=${shownCode}`, `the console's QR code holds the address and the code shown: ${read}`);
      await enrol.screenshot({ path: join(OUT, 'hall-admin-enrol-qr.png') });
      await assertNoMachineIds(page, 'hall: admin, enrolment QR');
      const enrolled = await fetch(`${relay.url}/v1/enroll`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ code: shownCode, device_name: '王芳的新手机' }),
      });
      assert(enrolled.ok && (await enrolled.json()).walker === 'w001', `the console's code enrols a phone for 王芳: ${enrolled.status}`);
      console.log('enrolment by QR from the hall console: a wrong PIN refused, the QR code read back, its code enrolled a phone for 王芳');
      await page.locator(tid('sign-out')).click();
      await page.locator(tid('screen-sign-in')).waitFor();
      // 王 changed her PIN just above.
      await signIn(page, { ...STAFF[1], pin: '2468' });
      console.log(`access log: the monthly list's export shown to the admin as "${what}" by ${who}`);
    }

    // 10. A grid deliberation meeting (网格议事会).
    {
      await page.locator(tid('nav-meetings')).click();
      await page.locator(`${tid('meeting-item')}, ${tid('meetings-empty')}`).first().waitFor();
      await assertNoMachineIds(page, 'hall: meetings');
      await page.locator(tid('meeting-new')).click();
      await page.locator(tid('screen-meeting-new')).waitFor();
      await page.locator(tid('meeting-grid')).selectOption(GRID);
      await page.locator(tid('meeting-request')).first().waitFor();
      await assertNoMachineIds(page, 'hall: new meeting');
      await page.locator(tid('meeting-place')).fill('马社村村委会');
      await page.locator(tid('meeting-topic-input')).fill('3组路灯与闲置太阳能路灯再利用');
      const names = page.locator(tid('participant-name'));
      await names.nth(0).fill('陈指导员');
      await names.nth(1).fill('王网格长');
      await names.nth(2).fill('张大爷');
      await page.locator(tid('participant-add')).click();
      await names.nth(3).fill('李科长');
      await page.locator(tid('participant-role')).nth(3).selectOption('department_head');
      await page.locator(tid('participant-department')).fill('村建办');
      await page.locator(`${tid('meeting-request')}[data-request-id="${id}"]`).check();
      await page.locator(tid('decision-text')).first().fill('利用闲置太阳能路灯约50盏，覆盖3组主干道');
      await page.locator(tid('decision-request')).first().selectOption(id);
      await page.locator(tid('meeting-submit')).click();
      await page.locator(tid('screen-meeting')).waitFor({ timeout: 30000 });
      await page.locator(tid('meeting-decision')).first().waitFor();
      await page.screenshot({ path: join(OUT, 'hall-meeting.png'), fullPage: true });
      await assertNoMachineIds(page, 'hall: a meeting');
      // The requests it discussed and decided on, by their descriptions.
      await page.locator(`${tid('meeting-discussed-request')}[data-request-id="${id}"]`).filter({ hasText: description.slice(0, 10) }).waitFor();
      await page.locator(`${tid('meeting-decision-request')}[data-request-id="${id}"]`).filter({ hasText: description.slice(0, 10) }).waitFor();
      const history = (await api(hall, 'request', { id })).history;
      assert(history.some((h) => h.type === 'meeting_decision'), 'the decision is an event on the request');
      // In the request's history it reads as a meeting decision, not as a triage result.
      await page.goto(`${hall.url}/#/hall/request/${id}`);
      const decided = page.locator(`${tid('timeline-event')}[data-type="meeting_decision"]`);
      await decided.waitFor();
      const told = await decided.innerText();
      assert(told.includes('议事决定') && told.includes('利用闲置太阳能路灯') && !told.includes('研判结果'), `the meeting decision in the history: ${told}`);
      await assertNoMachineIds(page, 'hall: a request with a meeting decision');
      await decided.scrollIntoViewIfNeeded();
      await page.screenshot({ path: join(OUT, 'hall-request-meeting-decision.png') });
      await decided.locator(tid('timeline-meeting')).click();
      await page.locator(tid('meeting-decision')).first().waitFor();
      await page.locator(tid('nav-meetings')).click();
      await page.locator(tid('meeting-item')).first().waitFor();
      await assertNoMachineIds(page, 'hall: meetings, one recorded');
    }

    // English: the hall's own words have no Chinese left.
    await page.locator(tid('nav-sync')).click();
    await page.locator(tid('screen-sync')).waitFor();
    await assertNoMachineIds(page, 'hall: sync');
    await page.locator(tid('lang-en')).click();
    await page.locator(tid('nav-inbox')).click();
    await page.locator(tid('screen-inbox')).waitFor();
    await assertNoMachineIds(page, 'hall: inbox in English');
    // (Its links: the name of who is signed in stays as she writes it.)
    const nav = (await page.locator(`${tid('side-nav')} a`).allInnerTexts()).join(' ');
    assert(!/[\u4e00-\u9fff]/.test(nav), `English navigation: ${nav}`);
    // English names are longer: the charts' labels still keep apart.
    await page.locator(tid('nav-dashboard')).click();
    await page.locator(tid('chart-trend') + ' canvas').waitFor();
    await assertChartsReadable(page, '1366×768 in English');
    await page.screenshot({ path: join(OUT, 'hall-dashboard-en.png'), fullPage: true });
    await page.locator(tid('nav-sync')).click();
    await page.locator(tid('lang-zh')).click();

    console.log(`hall e2e: ok (inbox, merge, accept, assign, progress, resolve with photo, phone feedback + rating, dashboard rate, monthly list + XLSX + print, meeting)`);
  } finally {
    await browser.close();
    for (const d of devices) await stop(d.child);
    await stop(relay.child);
  }
}

main().catch(async (e) => {
  console.error(e);
  await sleep(100);
  process.exit(1);
});
