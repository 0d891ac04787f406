import { describe, expect, it } from 'vitest';
import {
  addMonths,
  base64ToBytes,
  byLateness,
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
  resolutionRate,
  scopeKey,
  toLocalInput,
  useSideNav,
  type NewMeetingArgs,
} from '../lib/hall';

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
    expect(daysLate(now - 1, now)).toBe(1);
    expect(daysLate(now + 1, now)).toBe(0);
    expect(daysLate(null, now)).toBe(0);
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
