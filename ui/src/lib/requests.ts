// Request list logic that lives in the UI: status groups for the filter, overdue and ordering.

import type { RequestRow } from './api';
import { OPEN_STATUSES } from './format';

export const STATUS_GROUPS = {
  all: [] as string[],
  open: [...OPEN_STATUSES],
  resolved: ['resolved'],
  feedback: ['feedback_given'],
  done: ['rated', 'closed'],
  not_taken: ['rejected', 'merged'],
} as const;
export type StatusGroup = keyof typeof STATUS_GROUPS;
export const STATUS_GROUP_NAMES = Object.keys(STATUS_GROUPS) as StatusGroup[];


/** The `statuses` argument for a group (undefined = all). */
export function statusesFor(group: StatusGroup): string[] | undefined {
  const s = STATUS_GROUPS[group];
  return s.length ? [...s] : undefined;
}

/** Overdue: the core says so, or (between two status refreshes) the deadline has just passed. */
export function isOverdue(row: Pick<RequestRow, 'overdue' | 'deadline' | 'status'>, now: number): boolean {
  if (row.overdue) return true;
  return row.deadline !== null && row.deadline < now && OPEN_STATUSES.includes(row.status);
}

/**
 * Overdue first, keeping the core's order otherwise (a stable partition). The core already sends
 * overdue rows first; this keeps a row that became overdue since the page was loaded at the top.
 */
export function overdueFirst<T extends Pick<RequestRow, 'overdue' | 'deadline' | 'status'>>(rows: T[], now: number): T[] {
  const late: T[] = [];
  const rest: T[] = [];
  for (const r of rows) (isOverdue(r, now) ? late : rest).push(r);
  return [...late, ...rest];
}

/** A place not visited within 14 days (the core computes `stale`; this is the same rule). */
export const STALE_DAYS = 14;
export function isStale(lastVisitedAt: number | null, now: number): boolean {
  return lastVisitedAt === null || now - lastVisitedAt > STALE_DAYS * 24 * 3600 * 1000;
}
