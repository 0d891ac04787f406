// Request list logic that lives in the UI: status groups for the filter, overdue and ordering.

import { api, type RequestRow } from './api';
import { OPEN_STATUSES } from './format';

export const STATUS_GROUPS = {
  all: [] as string[],
  open: [...OPEN_STATUSES],
  // 待反馈 is asked of the core as "owed feedback" (`listArgsFor`): resolved requests, and the
  // duplicates merged into a resolved one whose own reporters are not yet told.
  resolved: ['resolved'],
  feedback: ['feedback_given'],
  done: ['rated', 'closed'],
  not_taken: ['rejected', 'merged'],
} as const;
export type StatusGroup = keyof typeof STATUS_GROUPS;
export const STATUS_GROUP_NAMES = Object.keys(STATUS_GROUPS) as StatusGroup[];


/** The list arguments for a group: its statuses, or the core's "owed feedback" for 待反馈. */
export function listArgsFor(group: StatusGroup): { statuses?: string[]; owed_feedback?: boolean } {
  return group === 'resolved' ? { owed_feedback: true } : { statuses: statusesFor(group) };
}

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

/** What names a request to a reader: its description (and where and how it stands). */
export type RequestBrief = Pick<RequestRow, 'id' | 'description' | 'address' | 'status' | 'grid' | 'number'>;

const briefs = new Map<string, Promise<RequestBrief | null>>();

/**
 * A request another one points at (a merge's target, a meeting's agenda), read once per id; null
 * when this device does not hold it (another grid's, or not synced yet: asked again next time).
 */
export function requestBrief(id: string): Promise<RequestBrief | null> {
  const known = briefs.get(id);
  if (known) return known;
  const p = api
    .request(id)
    .then((r): RequestBrief => ({ id: r.id, description: r.description, address: r.address, status: r.status, grid: r.grid, number: r.number ?? null }))
    .catch(() => {
      briefs.delete(id);
      return null;
    });
  briefs.set(id, p);
  return p;
}

/** Forget what was read (tests; a sync that may have changed a description). */
export function forgetBriefs(): void {
  briefs.clear();
}

/** A text cut to `max` characters, with an ellipsis when cut. */
export function clip(text: string, max = 40): string {
  const chars = [...text.trim()];
  return chars.length > max ? chars.slice(0, max - 1).join('') + '…' : chars.join('');
}
