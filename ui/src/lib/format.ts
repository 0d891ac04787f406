// Display helpers. Times are milliseconds since the epoch (UTC); they are shown in Asia/Shanghai,
// which has had no daylight saving since 1991, so a fixed +08:00 offset is exact and needs no
// time-zone database on the phone.

import { t } from './i18n.svelte';

const SHANGHAI_OFFSET_MS = 8 * 3600 * 1000;
const DAY_MS = 24 * 3600 * 1000;

function pad(n: number): string {
  return n < 10 ? '0' + n : String(n);
}

function shanghai(ms: number): Date {
  return new Date(ms + SHANGHAI_OFFSET_MS);
}

/** 2026-11-22 */
export function formatDate(ms: number): string {
  const d = shanghai(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
}

/** 14:05 */
export function formatTime(ms: number): string {
  const d = shanghai(ms);
  return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}

/** 2026-11-22 14:05 */
export function formatDateTime(ms: number): string {
  return `${formatDate(ms)} ${formatTime(ms)}`;
}

/** The calendar day in Shanghai, as a day number. */
export function shanghaiDay(ms: number): number {
  return Math.floor((ms + SHANGHAI_OFFSET_MS) / DAY_MS);
}

/** Whole calendar days (Shanghai) from `ms` to `now`; positive when `ms` is in the past. */
export function daysBetween(ms: number, now: number): number {
  return shanghaiDay(now) - shanghaiDay(ms);
}

/** "today", "yesterday", "N days ago", "tomorrow", "in N days". */
export function relativeDay(ms: number, now: number): string {
  const n = daysBetween(ms, now);
  if (n === 0) return t('time.today');
  if (n === 1) return t('time.yesterday');
  if (n > 1) return t('time.daysAgo', { n });
  if (n === -1) return t('time.tomorrow');
  return t('time.inDays', { n: -n });
}

/** Last visit of a place: relative day, or "never visited". */
export function lastVisitText(ms: number | null, now: number): string {
  return ms === null ? t('place.neverVisited') : relativeDay(ms, now);
}

/**
 * Whole calendar days (Shanghai) by which a deadline has passed at `now`: 0 before it and on its
 * own day. The one count behind "超期 N 天" and the overdue view's 逾期天数 column, so the two
 * never disagree.
 */
export function daysOverdue(deadline: number | null, now: number): number {
  if (deadline === null || deadline >= now) return 0;
  return Math.max(0, daysBetween(deadline, now));
}

/** How a deadline stands: overdue by N days, due today, N days left. */
export function deadlineText(deadline: number | null, now: number): string {
  if (deadline === null) return t('deadline.none');
  if (deadline < now) {
    const n = daysOverdue(deadline, now);
    return n <= 0 ? t('deadline.overdueToday') : t('deadline.overdueDays', { n });
  }
  const n = -daysBetween(deadline, now);
  return n <= 0 ? t('deadline.today') : t('deadline.inDays', { n });
}

/** Statuses in which a request is still being worked on (the core's `Status::is_open`). */
export const OPEN_STATUSES: readonly string[] = ['new', 'accepted', 'assigned', 'reopened'];

/**
 * The countdown beside a deadline ("还剩 N 天", "超期 N 天"), only while the request is open: once
 * it is resolved, rated, closed, rejected or merged the deadline no longer runs, so null.
 */
export function countdownText(row: { deadline: number | null; status: string }, now: number): string | null {
  if (row.deadline === null || !OPEN_STATUSES.includes(row.status)) return null;
  return deadlineText(row.deadline, now);
}

/** Clamp a progress fraction to 0..1 (NaN and missing count as 0). */
export function clampFraction(f: number | null | undefined): number {
  if (typeof f !== 'number' || !Number.isFinite(f)) return 0;
  return Math.min(1, Math.max(0, f));
}

/** "42%": never shows 100% before the fraction really is 1. */
export function fractionText(f: number | null | undefined): string {
  const c = clampFraction(f);
  const pct = c >= 1 ? 100 : Math.min(99, Math.floor(c * 100));
  return pct + '%';
}

/** 0 B, 512 B, 1.5 KB, 2.3 MB, 1.1 GB (1024-based, one decimal below 10). */
export function formatBytes(n: number | null | undefined): string {
  if (typeof n !== 'number' || !Number.isFinite(n) || n <= 0) return '0 B';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${Math.round(v)} B`;
  const s = v < 10 ? (Math.round(v * 10) / 10).toFixed(1) : String(Math.round(v));
  return `${s.replace(/\.0$/, '')} ${units[i]}`;
}

/** "3/10" */
export function countOf(done: number, total: number): string {
  return `${Math.max(0, done)}/${Math.max(0, total)}`;
}

/** A wait before the next PIN may be tried: "45 秒", "2 分 05 秒". */
export function waitText(seconds: number): string {
  const s = Math.max(0, Math.ceil(seconds));
  if (s < 60) return t('time.seconds', { n: s });
  return t('time.minutesSeconds', { m: Math.floor(s / 60), s: pad(s % 60) });
}
