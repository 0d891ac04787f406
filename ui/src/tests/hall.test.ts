import { describe, expect, it } from 'vitest';
import {
  addMonths,
  base64ToBytes,
  byLateness,
  changeText,
  checkDeadline,
  cleanMeeting,
  dateAfter,
  daysLate,
  deadlineFromDate,
  fromLocalInput,
  meetingProblems,
  monthBounds,
  monthOf,
  parseScope,
  pct,
  rankBreakdown,
  resolutionRate,
  scopeKey,
  toLocalInput,
  useSideNav,
  type NewMeetingArgs,
} from '../lib/hall';
import { deadlineText } from '../lib/format';

describe('hall layout', () => {
  it('uses the side navigation for hall and admin, or on a wide screen', () => {
    expect(useSideNav('hall', 390)).toBe(true);
    expect(useSideNav('admin', 390)).toBe(true);
    expect(useSideNav('walker', 390)).toBe(false);
    expect(useSideNav('walker', 1366)).toBe(true);
    expect(useSideNav(null, 800)).toBe(false);
  });
});

describe('scopes', () => {
  it('round-trip through their select value', () => {
    for (const s of [{ kind: 'all' }, { kind: 'village', id: 'v01' }, { kind: 'grid', id: 'v01-g01' }] as const) {
      expect(parseScope(scopeKey(s))).toEqual(s);
    }
    expect(parseScope('grid:')).toEqual({ kind: 'all' });
    expect(parseScope('nonsense:x')).toEqual({ kind: 'all' });
    expect(parseScope(null)).toEqual({ kind: 'all' });
  });
});

describe('months (China Standard Time)', () => {
  it('a moment just after midnight on the 1st in Shanghai is in the new month', () => {
    const firstNov = Date.UTC(2026, 10, 1) - 8 * 3600_000; // 2026-11-01 00:00 +08:00
    expect(monthOf(firstNov)).toBe('2026-11');
    expect(monthOf(firstNov - 1)).toBe('2026-10');
    expect(monthBounds('2026-11')).toEqual([firstNov, Date.UTC(2026, 11, 1) - 8 * 3600_000]);
  });
  it('adds months across years', () => {
    expect(addMonths('2026-12', 1)).toBe('2027-01');
    expect(addMonths('2026-01', -1)).toBe('2025-12');
    expect(addMonths('2026-05', -11)).toBe('2025-06');
  });
});

describe('change since last week and month', () => {
  it('gives rates in percentage points and counts as counts, with a sign', () => {
    expect(changeText(0.875, 0.863, true)).toBe('+1.2');
    expect(changeText(0.8, 0.85, true)).toBe('−5');
    expect(changeText(12, 15, false)).toBe('−3');
    expect(changeText(15, 12, false)).toBe('+3');
    expect(changeText(7, 7, false)).toBe('±0');
    // One resolution more out of 1138 is still a visible change.
    expect(changeText(994 / 1138, 993 / 1138, true)).toBe('+0.1');
  });
  it('says nothing where a rate has nothing to divide by', () => {
    expect(changeText(null, 0.5, true)).toBeNull();
    expect(changeText(0.5, null, true)).toBeNull();
  });
});

describe('rates', () => {
  it('formats a rate as a percentage, a missing one as a dash', () => {
    expect(pct(0.875)).toBe('87.5%');
    expect(pct(1)).toBe('100%');
    expect(pct(2 / 3)).toBe('66.7%');
    expect(pct(null)).toBe('—');
  });
  it('resolution rate is resolved over handled, and moves as expected for one more resolution', () => {
    expect(resolutionRate({ resolved: 0, handled: 0 })).toBeNull();
    const before = { resolved: 30, handled: 40 };
    const after = { resolved: 31, handled: 41 };
    expect(resolutionRate(after)! - resolutionRate(before)!).toBeCloseTo(31 / 41 - 30 / 40, 12);
  });
});

describe('deadlines and times', () => {
  it('a deadline typed as a date is the end of that day in Shanghai', () => {
    const d = deadlineFromDate('2026-11-30')!;
    expect(d).toBe(Date.UTC(2026, 11, 1) - 8 * 3600_000 - 1);
    expect(deadlineFromDate('30/11/2026')).toBeNull();
    expect(dateAfter(Date.UTC(2026, 10, 30, 17), 0)).toBe('2026-12-01'); // 01:00 on Dec 1st in Shanghai
  });
  it('datetime-local values are Shanghai time', () => {
    const ms = Date.UTC(2026, 10, 5, 1, 30); // 09:30 in Shanghai
    expect(toLocalInput(ms)).toBe('2026-11-05T09:30');
    expect(fromLocalInput('2026-11-05T09:30')).toBe(ms);
    expect(fromLocalInput('')).toBeNull();
  });
  it('the overdue view puts the longest late first', () => {
    const now = Date.UTC(2026, 10, 20);
    const day = 86_400_000;
    const rows = [{ id: 'a', deadline: now - 2 * day }, { id: 'b', deadline: now - 9 * day }, { id: 'c', deadline: now + day }, { id: 'd', deadline: null }];
    expect(byLateness(rows, now).map((r) => r.id).slice(0, 2)).toEqual(['b', 'a']);
    expect(daysLate(now - 1, now)).toBe(0); // passed this same day: "今天已超期"
    expect(daysLate(now + 1, now)).toBe(0);
    expect(daysLate(null, now)).toBe(0);
  });
  it('the 逾期天数 column and "超期 N 天" count the same days', () => {
    // A deadline typed as 2025-12-16 ends that day at 23:59:59.999; at 10:00 on 2026-11-27 it is
    // 346 calendar days late, though only 345 × 24 hours and 10 hours have passed.
    const deadline = deadlineFromDate('2025-12-16')!;
    const now = Date.UTC(2026, 10, 27, 2); // 10:00 in Shanghai
    expect(daysLate(deadline, now)).toBe(346);
    expect(deadlineText(deadline, now)).toBe('超期 346 天');
    const H = 3600_000;
    for (let h = 1; h < 24 * 40; h += 5) {
      const at = deadline + h * H;
      const n = daysLate(deadline, at);
      expect(deadlineText(deadline, at)).toBe(n === 0 ? '今天已超期' : `超期 ${n} 天`);
    }
  });
  it('a typed deadline: a bad date or year is not called missing', () => {
    const now = Date.UTC(2026, 10, 20, 2); // 2026-11-20, 10:00 in Shanghai
    expect(checkDeadline('2026-11-27', false, now)).toEqual({ deadline: deadlineFromDate('2026-11-27') });
    expect(checkDeadline('2026-11-20', false, now)).toEqual({ deadline: deadlineFromDate('2026-11-20') }); // today
    expect(checkDeadline('', false, now)).toEqual({ problem: 'missing' });
    expect(checkDeadline('', true, now)).toEqual({ problem: 'invalid' }); // the field holds an incomplete date
    expect(checkDeadline('20266-11-27', false, now)).toEqual({ problem: 'invalid' });
    expect(checkDeadline('2026-02-30', false, now)).toEqual({ problem: 'invalid' });
    expect(checkDeadline('2026-13-01', false, now)).toEqual({ problem: 'invalid' });
    expect(checkDeadline('0026-11-27', false, now)).toEqual({ problem: 'past' });
    expect(checkDeadline('2026-11-19', false, now)).toEqual({ problem: 'past' });
    expect(checkDeadline('2031-11-20', false, now)).toEqual({ deadline: deadlineFromDate('2031-11-20') });
    expect(checkDeadline('2031-11-21', false, now)).toEqual({ problem: 'too_far' });
    expect(checkDeadline('2206-11-27', false, now)).toEqual({ problem: 'too_far' });
  });
});

describe('dashboard breakdowns', () => {
  const row = (key: string, total: number, overdue = 0) => ({ key, label: key, total, overdue });
  it('rank the most requests first, then the most overdue, then by name, and show the top ten', () => {
    const rows = Array.from({ length: 47 }, (_, i) => row(`g${String(i).padStart(2, '0')}`, i % 9, i % 4));
    const r = rankBreakdown(rows, (b) => b.key);
    expect(r.rows).toHaveLength(47);
    expect(r.shown).toHaveLength(10);
    expect(r.hidden).toBe(37);
    expect(r.shown).toEqual(r.rows.slice(0, 10));
    for (let i = 1; i < r.rows.length; i++) {
      const [a, b] = [r.rows[i - 1], r.rows[i]];
      expect(a.total > b.total || (a.total === b.total && (a.overdue > b.overdue || (a.overdue === b.overdue && a.key < b.key)))).toBe(true);
    }
    expect(Math.min(...r.shown.map((b) => b.total))).toBeGreaterThanOrEqual(Math.max(...r.rows.slice(10).map((b) => b.total)));
  });
  it('show everything when there are ten or fewer', () => {
    const r = rankBreakdown([row('a', 1), row('b', 3), row('c', 2)], (b) => b.key);
    expect(r.shown.map((b) => b.key)).toEqual(['b', 'c', 'a']);
    expect(r.hidden).toBe(0);
  });
});

describe('XLSX download', () => {
  it('decodes base64 to the same bytes', () => {
    expect([...base64ToBytes(btoa('PK\u0003\u0004'))]).toEqual([0x50, 0x4b, 3, 4]);
  });
});

describe('meeting form', () => {
  const blank: NewMeetingArgs = { grid: 'v01-g01', kind: 'deliberation', held_at: 1, place: ' 村委会 ', topic: '', participants: [{ name: '', role: 'instructor' }], requests: [], decisions: [{ request: null, decision: ' ' }] };
  it('names what is missing', () => {
    expect(meetingProblems(blank)).toEqual(['meeting.needTopic', 'meeting.needParticipant', 'meeting.needDecision']);
    expect(meetingProblems({ ...blank, grid: '', held_at: NaN })).toContain('meeting.needTime');
  });
  it('drops blank rows and trims before sending', () => {
    const m = cleanMeeting({
      ...blank,
      topic: ' 路灯 ',
      participants: [{ name: ' 王芳 ', role: 'grid_head', department: ' ' }, { name: '', role: 'walker' }, { name: '李科长', role: 'department_head', department: '城建办' }],
      requests: ['r1', 'r1', ''],
      decisions: [{ request: 'r1', decision: ' 利用闲置路灯 ' }, { request: null, decision: '' }],
    });
    expect(m.place).toBe('村委会');
    expect(m.topic).toBe('路灯');
    expect(m.participants).toEqual([{ name: '王芳', role: 'grid_head' }, { name: '李科长', role: 'department_head', department: '城建办' }]);
    expect(m.requests).toEqual(['r1']);
    expect(m.decisions).toEqual([{ request: 'r1', decision: '利用闲置路灯' }]);
    expect(meetingProblems(m)).toEqual([]);
  });
});
