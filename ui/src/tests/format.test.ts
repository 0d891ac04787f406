import { describe, expect, it } from 'vitest';
import {
  clampFraction,
  countdownText,
  daysBetween,
  deadlineText,
  formatBytes,
  formatDate,
  formatDateTime,
  formatTime,
  fractionText,
  lastVisitText,
  relativeDay,
} from '../lib/format';
import { setLang } from '../lib/i18n.svelte';

const H = 3600_000;
const D = 24 * H;

describe('Asia/Shanghai display', () => {
  it('shows UTC instants at +08:00', () => {
    expect(formatDateTime(0)).toBe('1970-01-01 08:00');
    // 16:30 UTC on 22 Nov is 00:30 on 23 Nov in Shanghai
    const t = Date.UTC(2026, 10, 22, 16, 30);
    expect(formatDate(t)).toBe('2026-11-23');
    expect(formatTime(t)).toBe('00:30');
    expect(formatDateTime(Date.UTC(2026, 0, 5, 1, 2))).toBe('2026-01-05 09:02');
  });

  it('counts calendar days in Shanghai, not in UTC', () => {
    const lateEvening = Date.UTC(2026, 10, 22, 15, 0); // 23:00 Shanghai, 22 Nov
    const earlyMorning = Date.UTC(2026, 10, 22, 17, 0); // 01:00 Shanghai, 23 Nov
    expect(daysBetween(lateEvening, earlyMorning)).toBe(1);
    expect(daysBetween(earlyMorning, earlyMorning + 20 * H)).toBe(0);
  });
});

describe('relative days', () => {
  const now = Date.UTC(2026, 10, 22, 4, 0); // noon in Shanghai
  it('in Chinese', () => {
    expect(relativeDay(now - H, now)).toBe('今天');
    expect(relativeDay(now - D, now)).toBe('昨天');
    expect(relativeDay(now - 15 * D, now)).toBe('15 天前');
    expect(relativeDay(now + D, now)).toBe('明天');
    expect(relativeDay(now + 3 * D, now)).toBe('3 天后');
    expect(lastVisitText(null, now)).toBe('从未走访');
  });
  it('in English', () => {
    setLang('en');
    expect(relativeDay(now - H, now)).toBe('Today');
    expect(relativeDay(now - D, now)).toBe('Yesterday');
    expect(relativeDay(now - 15 * D, now)).toBe('15 days ago');
    expect(relativeDay(now + 3 * D, now)).toBe('In 3 days');
    expect(lastVisitText(null, now)).toBe('Never visited');
  });
  it('deadlines', () => {
    expect(deadlineText(null, now)).toBe('未定');
    expect(deadlineText(now - 3 * D, now)).toBe('超期 3 天');
    expect(deadlineText(now - H, now)).toBe('今天已超期');
    expect(deadlineText(now + H, now)).toBe('今天到期');
    expect(deadlineText(now + 2 * D, now)).toBe('还剩 2 天');
    setLang('en');
    expect(deadlineText(now - 3 * D, now)).toBe('Overdue 3 d');
  });
  it('the countdown runs only while a request is open', () => {
    for (const status of ['new', 'accepted', 'assigned', 'reopened']) {
      expect(countdownText({ deadline: now + 2 * D, status }, now), status).toBe('还剩 2 天');
      expect(countdownText({ deadline: now - 3 * D, status }, now), status).toBe('超期 3 天');
    }
    for (const status of ['resolved', 'feedback_given', 'rated', 'closed', 'rejected', 'merged']) {
      expect(countdownText({ deadline: now - 3 * D, status }, now), status).toBeNull();
      expect(countdownText({ deadline: now + 2 * D, status }, now), status).toBeNull();
    }
    expect(countdownText({ deadline: null, status: 'assigned' }, now)).toBeNull();
  });
});

describe('progress and sizes', () => {
  it('fraction text never claims 100% early', () => {
    expect(fractionText(0)).toBe('0%');
    expect(fractionText(0.425)).toBe('42%');
    expect(fractionText(0.999)).toBe('99%');
    expect(fractionText(1)).toBe('100%');
    expect(fractionText(1.7)).toBe('100%');
    expect(fractionText(-1)).toBe('0%');
    expect(fractionText(NaN)).toBe('0%');
    expect(fractionText(null)).toBe('0%');
    expect(clampFraction(undefined)).toBe(0);
  });
  it('byte sizes', () => {
    expect(formatBytes(0)).toBe('0 B');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(1024)).toBe('1 KB');
    expect(formatBytes(1536)).toBe('1.5 KB');
    expect(formatBytes(2.34 * 1024 * 1024)).toBe('2.3 MB');
    expect(formatBytes(150 * 1024 * 1024)).toBe('150 MB');
    expect(formatBytes(1.1 * 1024 ** 3)).toBe('1.1 GB');
    expect(formatBytes(undefined)).toBe('0 B');
  });
});
