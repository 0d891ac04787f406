import { describe, expect, it, vi } from 'vitest';
import { createDraftSaver } from '../lib/draft';
import { errorText } from '../lib/errors';
import { describeDetails } from '../lib/history';
import { setLang } from '../lib/i18n.svelte';
import { buildRequestArgs, type RequestDraft } from '../lib/requestDraft';
import { isOverdue, isStale, listArgsFor, overdueFirst, statusesFor } from '../lib/requests';
import { refs } from '../lib/reference.svelte';
import { nextPollDelay, pendingCount } from '../lib/status.svelte';
import { visitWalkers, type AppStatus } from '../lib/api';

const D = 24 * 3600_000;
const now = Date.UTC(2026, 10, 22, 4);

describe('overdue and ordering', () => {
  const row = (id: string, o: Partial<{ overdue: boolean; deadline: number | null; status: string; created_at: number }>) => ({
    id,
    overdue: false,
    deadline: null,
    status: 'assigned',
    created_at: now - D,
    ...o,
  });
  it('overdue: the core’s flag, or a passed deadline on an open request', () => {
    expect(isOverdue(row('a', { overdue: true }), now)).toBe(true);
    expect(isOverdue(row('a', { deadline: now - 1 }), now)).toBe(true);
    expect(isOverdue(row('a', { deadline: now - 1, status: 'resolved' }), now)).toBe(false);
    expect(isOverdue(row('a', { deadline: now + 1 }), now)).toBe(false);
    expect(isOverdue(row('a', {}), now)).toBe(false);
  });
  it('puts overdue rows first and keeps the core’s order otherwise', () => {
    const rows = [
      row('a', { overdue: true, deadline: now - 3 * D }),
      row('b', { deadline: now + 5 * D }),
      row('c', {}),
      row('just-late', { deadline: now - 1 }),
      row('d', { deadline: now + D }),
      row('done-late', { deadline: now - D, status: 'closed' }),
    ];
    expect(overdueFirst(rows, now).map((r) => r.id)).toEqual(['a', 'just-late', 'b', 'c', 'd', 'done-late']);
  });
  it('status groups', () => {
    expect(statusesFor('all')).toBeUndefined();
    expect(statusesFor('open')).toEqual(['new', 'accepted', 'assigned', 'reopened']);
    expect(statusesFor('feedback')).toEqual(['feedback_given']);
  });
  it('待反馈 asks the core for requests owed feedback, merged duplicates included', () => {
    expect(listArgsFor('resolved')).toEqual({ owed_feedback: true });
    expect(listArgsFor('open')).toEqual({ statuses: ['new', 'accepted', 'assigned', 'reopened'] });
  });
  it('stale: never visited, or not within 14 days', () => {
    expect(isStale(null, now)).toBe(true);
    expect(isStale(now - 15 * D, now)).toBe(true);
    expect(isStale(now - 13 * D, now)).toBe(false);
  });
});

describe('error sentences', () => {
  it('maps known codes in both languages, each with its next step, and never shows raw text', () => {
    expect(errorText({ code: 'network', message: 'cannot reach the relay: refused' })).toBe('连不上服务中心，请到有信号的地方再试。');
    expect(errorText({ code: 'photo_not_here_yet', message: '' })).toBe('照片还没同步到本机。');
    // A revocation nobody could prove (issue 14): said in her words, and that nothing was erased.
    expect(errorText({ code: 'revocation_unverified', message: 'something answering as the relay said…' })).toContain('没有删除');
    expect(errorText({ code: 'photo_something_new', message: 'x' })).toBe('照片处理出错：请重新拍一张再试；还不行请联系服务中心。');
    // Regression: raw library text ("Hit the end of buffer, expected more data") reached the
    // screen. An unknown code now gets a sentence in the user's language that names the code.
    const unknown = errorText({ code: 'weird_new_code', message: 'Hit the end of buffer, expected more data' });
    expect(unknown).toContain('weird_new_code');
    expect(unknown).not.toContain('buffer');
    expect(errorText({ code: 'photo_unsupported_format', message: '' })).toContain('兼容性最佳');
    expect(errorText({ code: 'invalid_input', message: 'invalid description: must not be empty' })).toBe('“诉求内容”填写不正确，请检查。');
    expect(errorText({ code: 'invalid_input', message: 'something else' })).toBe('有内容填写不正确，请检查。');
    expect(errorText({ code: 'relay_refused', message: 'the relay refused: unknown code (bad_enrollment_code)' })).toContain('登记码无效');
    setLang('en');
    expect(errorText({ code: 'not_joined', message: '' })).toBe('This phone has not joined a service hall yet.');
    expect(errorText({ code: 'unauthorized', message: '' })).toContain('Enrol it again');
    expect(errorText(new Error('boom'))).toContain('(code unknown)');
  });
});

describe('history details', () => {
  it('names fields, departments, ratings and decisions', () => {
    refs.reference = { categories: [], departments: [{ id: 'dept-urban', name: '城建办', level: 'town' }], walkers: [{ id: 'w1', name: '张桂英', grids: [] }] };
    expect(describeDetails({ note: '已修好' })).toEqual([{ key: 'note', label: '说明', value: '已修好' }]);
    expect(describeDetails({ rating: 'basically', comment: '' })).toEqual([{ key: 'rating', label: '评价', value: '基本满意' }]);
    const assigned = describeDetails({ assignment: { department: 'dept-urban', person: 'w1', deadline: Date.UTC(2026, 10, 30, 2), level: 'town' } });
    expect(assigned.map((l) => l.value)).toEqual(['城建办', '张桂英', '2026-11-30 10:00', '镇级']);
    // The bridge sends the core's event fields as they are: a deadline is an RFC 3339 string there.
    expect(describeDetails({ assignment: { deadline: '2026-11-30T08:53:04.465Z' } })[0].value).toBe('2026-11-30 16:53');
    expect(describeDetails({ decision: { kind: 'reject', reason: '不属于本村' } }).map((l) => l.value)).toEqual(['不予受理', '不属于本村']);
    expect(describeDetails({ type: 'resolved', note: 'x', photos: ['h1', 'h2'] }).map((l) => l.value)).toEqual(['x', '2 张']);
    refs.reference = null;
  });
});

describe('request arguments', () => {
  const base: RequestDraft = {
    grid: 'g1',
    category: 'streetlight',
    description: '  路灯不亮 ',
    urgency: 'high',
    address: ' 三组 12 号 ',
    anonymous: false,
    reporter_name: '',
    reporter_phone: '',
    place: '',
    place_kind: '',
    visit: '',
    gps: null,
    photos: [],
  };
  it('is anonymous without a name, trims text, omits empty optionals', () => {
    expect(buildRequestArgs(base)).toEqual({
      grid: 'g1',
      category: 'streetlight',
      description: '路灯不亮',
      urgency: 'high',
      address: '三组 12 号',
      reporter: { kind: 'anonymous' },
    });
  });
  it('names the resident, her household and the visit', () => {
    const args = buildRequestArgs({ ...base, reporter_name: '张桂英', reporter_phone: '138', place: 'h-9', place_kind: 'household', visit: 'v-1', gps: { lat: 30.7, lon: 121 } });
    expect(args.reporter).toEqual({ kind: 'resident', name: '张桂英', phone: '138', household: 'h-9' });
    expect(args.visit).toBe('v-1');
    expect(args.gps).toEqual({ lat: 30.7, lon: 121 });
    expect(buildRequestArgs({ ...base, reporter_name: '张桂英', anonymous: true }).reporter).toEqual({ kind: 'anonymous' });
    // A masked number (as lists show it) is never sent as a phone: the core uses the household's.
    expect(buildRequestArgs({ ...base, reporter_name: '张桂英', reporter_phone: ' 138****5678 ', place: 'h-9', place_kind: 'household' }).reporter).toEqual({
      kind: 'resident',
      name: '张桂英',
      household: 'h-9',
    });
    expect(buildRequestArgs({ ...base, reporter_name: 'x', place: 'e-1', place_kind: 'enterprise' }).reporter).toEqual({ kind: 'resident', name: 'x' });
  });
});

describe('drafts', () => {
  it('saves once, 300 ms after the last change', async () => {
    vi.useFakeTimers();
    const put = vi.fn().mockResolvedValue({});
    const s = createDraftSaver('visit:h1', 300, put);
    s.schedule({ notes: 'a' });
    await vi.advanceTimersByTimeAsync(200);
    s.schedule({ notes: 'ab' });
    await vi.advanceTimersByTimeAsync(299);
    expect(put).not.toHaveBeenCalled();
    await vi.advanceTimersByTimeAsync(1);
    expect(put).toHaveBeenCalledTimes(1);
    expect(put).toHaveBeenCalledWith('visit:h1', { notes: 'ab' });
    s.schedule({ notes: 'abc' });
    s.cancel();
    await vi.advanceTimersByTimeAsync(1000);
    expect(put).toHaveBeenCalledTimes(1);
    s.schedule({ notes: 'abcd' });
    await s.flush();
    expect(put).toHaveBeenLastCalledWith('visit:h1', { notes: 'abcd' });
    vi.useRealTimers();
  });
});

describe('status polling', () => {
  it('polls fast while syncing, slowly otherwise; counts what waits', () => {
    const s = { syncing: true, pending_documents: 3, pending_photos: 2 } as AppStatus;
    expect(nextPollDelay(s)).toBe(1000);
    expect(nextPollDelay({ ...s, syncing: false, enrolled: true, online: true })).toBe(5000);
    // Out of reach: asked twice a second, so the way back is seen within a second.
    expect(nextPollDelay({ ...s, syncing: false, enrolled: true, online: false })).toBe(500);
    expect(nextPollDelay(null)).toBe(5000);
    expect(pendingCount(s)).toBe(5);
    expect(pendingCount(null)).toBe(0);
  });
});

describe('visit walkers', () => {
  it('accepts a list or a comma-separated string', () => {
    expect(visitWalkers({ walkers: ['w1', 'w2'] })).toEqual(['w1', 'w2']);
    expect(visitWalkers({ walkers: 'w1,w2' })).toEqual(['w1', 'w2']);
    expect(visitWalkers({ walkers: 'w001' })).toEqual(['w001']);
    expect(visitWalkers({ walkers: '' })).toEqual([]);
  });
});

describe('the enrolment link of a QR code', () => {
  it('gives the relay address and the code, and nothing for other text', async () => {
    const { parseEnrolLink } = await import('../lib/enrol');
    expect(parseEnrolLink('gridwalk:enrol?relay=http://192.168.1.20:8470&code=K7MX2P9QRT')).toEqual({
      relay: 'http://192.168.1.20:8470',
      code: 'K7MX2P9QRT',
    });
    expect(parseEnrolLink(' gridwalk:enrol?code=K7MX2P9QRT ')).toEqual({ relay: null, code: 'K7MX2P9QRT' });
    expect(parseEnrolLink('K7MX2P9QRT')).toBeNull();
    expect(parseEnrolLink('gridwalk:enrol?relay=http://x')).toBeNull();
  });
});
