// The hall console's commands (docs/app-commands.md, "Hall console" and "Meetings") and the pure
// logic its screens share: layout choice, scopes, months, rates, deadlines, downloads, meeting
// form checks. No Svelte state here, so Vitest covers it directly.

import { call, type RequestRow, type Role } from './api';
import { daysOverdue } from './format';

// ---------------------------------------------------------------------------------------------
// Types

export type Scope = { kind: 'all' } | { kind: 'village'; id: string } | { kind: 'grid'; id: string };

export type Figures = {
  total: number;
  untriaged: number;
  handled: number;
  resolved: number;
  unresolved: number;
  resolved_with_deadline: number;
  on_time: number;
  late: number;
  rated: number;
  satisfied: number;
  not_satisfied: number;
  overdue: number;
  resolution_rate: number | null;
  on_time_rate: number | null;
  satisfaction_rate: number | null;
};
/** The headline figures a week and a month before the dashboard's now (`kpi_changes`). */
export type KpiChanges = { week_ago: { at: number; figures: Figures }; month_ago: { at: number; figures: Figures } };
export type Measure = Exclude<keyof Figures, 'resolution_rate' | 'on_time_rate' | 'satisfaction_rate'>;
export type Breakdown = Figures & { key: string | null; label: string };
export type MonthPoint = Figures & { month: string; resolved_in_month: number };
export type Coverage = {
  days: number;
  since: number;
  grids: number;
  grids_not_walked: number;
  enterprise_grids: number;
  enterprise_grids_not_walked: number;
  households: number;
  households_not_visited: number;
  enterprises: number;
  enterprises_not_visited: number;
};
export type Dashboard = {
  scope: Scope;
  from: number | null;
  to: number | null;
  now: number;
  figures: Figures;
  by_category: Breakdown[];
  by_department: Breakdown[];
  by_grid: Breakdown[];
  by_month: MonthPoint[];
  coverage: Coverage;
};

export type Slice =
  | { by: 'all' }
  | { by: 'category'; key: string }
  | { by: 'department'; key: string | null }
  | { by: 'grid'; key: string }
  | { by: 'month'; key: string }
  | { by: 'resolved_in_month'; key: string };
export type DrillWhat =
  | { what: 'requests'; measure: Measure; slice: Slice }
  | { what: 'grids_not_walked' }
  | { what: 'enterprise_grids_not_walked' }
  | { what: 'households_not_visited' }
  | { what: 'enterprises_not_visited' };
export type PlaceItem = { id: string; name: string; address?: string; grid?: string | null; village?: string | null; last_visited_at: number | null };
export type DrillResult = { kind: 'request' | 'grid' | 'household' | 'enterprise'; total: number; ids: string[]; items: (RequestRow | PlaceItem)[] };

export type Candidate = RequestRow & { score: number; place_similarity: number; text_similarity: number };

export type MonthlyRow = {
  id: string;
  number?: string | null;
  village: string | null;
  village_name: string;
  grid: string;
  grid_name: string;
  enterprise_grid: boolean;
  micro_grid: string | null;
  micro_grid_name: string;
  category: string;
  category_name: string;
  urgency: string;
  department: string | null;
  department_name: string;
  level: string | null;
  deadline: number | null;
  status: string;
  status_name: string;
  completion: string;
  completion_name: string;
  /** Raised in an earlier month and still open: carried over to this month's list. */
  carried_over: boolean;
  created_at: number;
  resolved_at: number | null;
  address: string;
  description: string;
};
export type MonthlyGrid = {
  grid: string;
  grid_name: string;
  village: string | null;
  village_name: string;
  enterprise_grid: boolean;
  total: number;
  resolved: number;
  in_progress: number;
  overdue: number;
  untriaged: number;
  not_handled: number;
  resolution_rate: number | null;
  /** Open requests from earlier months listed with this month's (not in total). */
  carried_over: number;
};
export type MonthlyList = { scope: Scope; scope_name: string; month: string; from: number; to: number; now: number; rows: MonthlyRow[]; grids: MonthlyGrid[]; total: MonthlyGrid };
export type ExportedFile = { path: string; file_name: string; sheets: string[]; requests: number; data_base64: string };

export type AdminLists = {
  villages: { id: string; name: string; grids: { id: string; name: string; enterprise_grid: boolean }[] }[];
  grids: { id: string; name: string; enterprise_grid: boolean; village: string | null; village_name: string | null }[];
  departments: { id: string; name: string; level: string }[];
  walkers: { id: string; name: string; phone: string | null; role: string; work_group: string | null; grids: string[] }[];
  /** Records this device holds but cannot read, with the part that cannot be read. */
  damaged?: { doc_id: string; field: string; message: string }[];
};

/** One line of this device's access log: a full phone number shown, or residents' data exported. */
export type AccessEntry = {
  seq: number;
  /** When (ms since the epoch). */
  at: number;
  /** Who: a person's id (a staff member, a walker). */
  person: string;
  /** The device it happened on (its id: never shown) and its name as the hall enrolled it. */
  device: string;
  device_name: string;
  kind: AccessKind | string;
  /** Whose data: `household:<id>`, `enterprise:<id>`, `request:<id>`, or an export's scope. */
  subject: string;
  /** What exactly, in English: the file written and how many records. */
  detail: string;
};
export const ACCESS_KINDS = ['reveal_phone', 'export_requests', 'export_monthly', 'export_reference', 'export_evidence'] as const;
export type AccessKind = (typeof ACCESS_KINDS)[number];

/** What republishing the rosters did: each changed roster goes to its grid's phones. */
export type PublishReport = { created: number; updated: number; unchanged: number };

export const PARTICIPANT_ROLES = ['instructor', 'grid_head', 'walker', 'resident_rep', 'department_head', 'other'] as const;
export type ParticipantRole = (typeof PARTICIPANT_ROLES)[number];
export type Participant = { name: string; role: ParticipantRole; department?: string };
export type MeetingKind = 'deliberation' | 'service_day';
export type NewMeetingArgs = {
  grid: string;
  kind: MeetingKind;
  held_at: number;
  place: string;
  topic: string;
  participants: Participant[];
  requests: string[];
  decisions: { request: string | null; decision: string }[];
};
export type Meeting = NewMeetingArgs & { id: string; created_by: string; created_at: number };

// ---------------------------------------------------------------------------------------------
// Commands

export const hallApi = {
  inbox: (args: { grid?: string; limit?: number; offset?: number } = {}) => call<{ items: RequestRow[]; total: number }>('inbox', args),
  duplicates: (id: string, limit = 5) => call<Candidate[]>('duplicates', { id, limit }),
  dashboard: (args: { scope: Scope; from?: number; to?: number }) => call<Dashboard>('dashboard', args),
  kpiChanges: (args: { scope: Scope; from?: number; to?: number }) => call<KpiChanges>('kpi_changes', args),
  drill: (args: { scope: Scope; from?: number; to?: number; limit?: number; offset?: number } & DrillWhat) =>
    call<DrillResult>('drill', args as unknown as Record<string, unknown>),
  monthlyList: (month: string, scope: Scope) => call<MonthlyList>('monthly_list', { month, scope }),
  exportMonthlyXlsx: (month: string, scope: Scope) => call<ExportedFile>('export_monthly_xlsx', { month, scope }),
  adminLists: () => call<AdminLists>('admin_lists', {}),
  adminSaveDepartment: (args: { id?: string; name: string; level: string }) =>
    call<{ id: string; published: PublishReport }>('admin_save_department', args),
  adminSaveQuickPhrases: (phrases: string[]) =>
    call<{ phrases: string[]; published: PublishReport }>('admin_save_quick_phrases', { phrases }),
  adminAssignWalker: (walker: string, grids: string[]) =>
    call<{ walker: string; published: PublishReport }>('admin_assign_walker', { walker, grids }),
  recordMeeting: (args: NewMeetingArgs) => call<Meeting>('record_meeting', args as unknown as Record<string, unknown>),
  meetings: (args: { grid?: string; limit?: number } = {}) => call<Meeting[]>('meetings', args),
  meeting: (id: string) => call<Meeting>('meeting', { id }),
  /** The access log, newest first; an admin's only (`forbidden` for anyone else). */
  accessLog: (limit?: number) => call<AccessEntry[]>('access_log', limit === undefined ? {} : { limit }),
};

// ---------------------------------------------------------------------------------------------
// Logic

/** The hall's side navigation replaces the bottom tabs for hall and admin, or on a wide screen. */
export const WIDE_PX = 1024;
export function useSideNav(role: Role | null | undefined, width: number): boolean {
  return role === 'hall' || role === 'admin' || width >= WIDE_PX;
}
export function isHallRole(role: Role | null | undefined): boolean {
  return role === 'hall' || role === 'admin';
}

/** `all`, `village:v01`, `grid:v01-g01` ↔ a scope (for select values and the URL). */
export function scopeKey(s: Scope): string {
  return s.kind === 'all' ? 'all' : `${s.kind}:${s.id}`;
}
export function parseScope(key: string | null | undefined): Scope {
  if (!key) return { kind: 'all' };
  const i = key.indexOf(':');
  const kind = i < 0 ? key : key.slice(0, i);
  const id = i < 0 ? '' : key.slice(i + 1);
  if ((kind === 'village' || kind === 'grid') && id) return { kind, id };
  return { kind: 'all' };
}

const SHANGHAI_MS = 8 * 3600 * 1000;

/** The month (YYYY-MM, Shanghai) a moment falls in. */
export function monthOf(ms: number): string {
  const d = new Date(ms + SHANGHAI_MS);
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}`;
}
/** The month `delta` months after `month`. */
export function addMonths(month: string, delta: number): string {
  const [y, m] = month.split('-').map(Number);
  const idx = y * 12 + (m - 1) + delta;
  return `${Math.floor(idx / 12)}-${String((idx % 12) + 1).padStart(2, '0')}`;
}
/** The first moment of a month (Shanghai) and of the next, in ms. */
export function monthBounds(month: string): [number, number] {
  const [y, m] = month.split('-').map(Number);
  return [Date.UTC(y, m - 1, 1) - SHANGHAI_MS, Date.UTC(y, m, 1) - SHANGHAI_MS];
}

/** "87.5%", or "—" when there is nothing to divide by. */
export function pct(rate: number | null | undefined): string {
  if (rate === null || rate === undefined || !Number.isFinite(rate)) return '—';
  return (Math.round(rate * 1000) / 10).toFixed(1).replace(/\.0$/, '') + '%';
}

/**
 * The change of one KPI since an earlier moment, as a person reads it: rates in percentage
 * points ("+1.2"), counts as counts ("+5"), "±0" when unchanged; null when either side has no
 * value (a rate with nothing to divide by).
 */
export function changeText(now: number | null | undefined, then: number | null | undefined, rate: boolean): string | null {
  if (now === null || now === undefined || then === null || then === undefined) return null;
  if (!Number.isFinite(now) || !Number.isFinite(then)) return null;
  const d = rate ? Math.round((now - then) * 1000) / 10 : now - then;
  if (d === 0) return '±0';
  const text = rate ? Math.abs(d).toFixed(1).replace(/\.0$/, '') : String(Math.abs(d));
  return (d > 0 ? '+' : '−') + text;
}

/** How many bars a breakdown chart shows: the rest are in the list under it. */
export const CHART_TOP_N = 10;

/**
 * A breakdown (by category, office or grid) ranked for a chart read at a glance: most requests
 * first, then most overdue, then by name; `shown` is the first `n`, `rows` all of them.
 */
export function rankBreakdown<T extends Pick<Breakdown, 'total' | 'overdue'>>(rows: T[], name: (r: T) => string, n = CHART_TOP_N): { rows: T[]; shown: T[]; hidden: number } {
  const ranked = rows
    .map((r) => ({ r, name: name(r) }))
    .sort((a, b) => b.r.total - a.r.total || b.r.overdue - a.r.overdue || a.name.localeCompare(b.name, 'zh-CN'))
    .map((x) => x.r);
  const shown = ranked.slice(0, Math.max(0, n));
  return { rows: ranked, shown, hidden: ranked.length - shown.length };
}

/** resolved / handled, as the dashboard defines 办结率. */
export function resolutionRate(f: Pick<Figures, 'resolved' | 'handled'>): number | null {
  return f.handled > 0 ? f.resolved / f.handled : null;
}

/** The end of a `YYYY-MM-DD` day in Shanghai (23:59:59.999) as ms: a deadline typed as a date. */
export function deadlineFromDate(date: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date.trim());
  if (!m) return null;
  return Date.UTC(+m[1], +m[2] - 1, +m[3] + 1) - SHANGHAI_MS - 1;
}
/** How far ahead a deadline may be set; a later year is taken for a typing slip. */
export const DEADLINE_MAX_YEARS = 5;
export type DeadlineProblem = 'missing' | 'invalid' | 'past' | 'too_far';

/**
 * Checks the assignment's deadline as the date input holds it: `value` is the input's value
 * (`YYYY-MM-DD`, or '' when the browser cannot read what was typed: then `badInput` is true).
 * Empty is "missing"; a date the calendar does not have, or a year of more or fewer than four
 * digits, is "invalid"; a day before today is "past"; more than DEADLINE_MAX_YEARS years ahead
 * is "too_far". Otherwise the deadline is the end of that day (Shanghai).
 */
export function checkDeadline(value: string, badInput: boolean, now: number): { deadline: number } | { problem: DeadlineProblem } {
  const v = value.trim();
  if (!v) return { problem: badInput ? 'invalid' : 'missing' };
  const m = /^(\d+)-(\d{1,2})-(\d{1,2})$/.exec(v);
  if (!m || m[1].length !== 4) return { problem: 'invalid' };
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  const day = new Date(Date.UTC(y, mo - 1, d));
  if (mo < 1 || mo > 12 || d < 1 || day.getUTCMonth() !== mo - 1 || day.getUTCDate() !== d) return { problem: 'invalid' };
  const iso = `${m[1]}-${String(mo).padStart(2, '0')}-${String(d).padStart(2, '0')}`;
  if (iso < dateAfter(now, 0)) return { problem: 'past' };
  if (iso > latestDeadline(now)) return { problem: 'too_far' };
  return { deadline: deadlineFromDate(iso)! };
}
/** The latest deadline `checkDeadline` accepts, for the date input's `max`. */
export function latestDeadline(now: number): string {
  const [y, m, d] = dateAfter(now, 0).split('-');
  return `${Number(y) + DEADLINE_MAX_YEARS}-${m}-${d}`;
}
/** `YYYY-MM-DD` (Shanghai) `days` after `now`. */
export function dateAfter(now: number, days: number): string {
  const d = new Date(now + SHANGHAI_MS + days * 86_400_000);
  return `${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, '0')}-${String(d.getUTCDate()).padStart(2, '0')}`;
}
/** `YYYY-MM-DDTHH:MM` (Shanghai) for a datetime-local input, and back. */
export function toLocalInput(ms: number): string {
  return new Date(ms + SHANGHAI_MS).toISOString().slice(0, 16);
}
export function fromLocalInput(text: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(text.trim());
  if (!m) return null;
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5]) - SHANGHAI_MS;
}

/**
 * Days late, the overdue view's 逾期天数 and its sort key: the same count as the "超期 N 天" beside
 * the deadline (whole calendar days in Shanghai since the deadline's day; 0 on that day itself).
 */
export const daysLate = daysOverdue;
/** Most late first. */
export function byLateness<T extends { deadline: number | null }>(rows: T[], now: number): T[] {
  return [...rows].sort((a, b) => daysLate(b.deadline, now) - daysLate(a.deadline, now) || (a.deadline ?? 0) - (b.deadline ?? 0));
}

/** Base64 to bytes (for the XLSX download). */
export function base64ToBytes(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
export const XLSX_MIME = 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';

/** Offers a file to the browser's download. */
export function downloadFile(file: Pick<ExportedFile, 'file_name' | 'data_base64'>): void {
  const blob = new Blob([base64ToBytes(file.data_base64) as BlobPart], { type: XLSX_MIME });
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = file.file_name;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** What is missing from a meeting form, as locale keys (empty: it can be recorded). */
export function meetingProblems(m: NewMeetingArgs): string[] {
  const out: string[] = [];
  if (!m.grid) out.push('meeting.needGrid');
  if (!m.topic.trim()) out.push('meeting.needTopic');
  if (!Number.isFinite(m.held_at)) out.push('meeting.needTime');
  if (!m.participants.some((p) => p.name.trim())) out.push('meeting.needParticipant');
  if (!m.decisions.some((d) => d.decision.trim())) out.push('meeting.needDecision');
  return out;
}
/** The meeting as it is sent: blank participants and decisions dropped, text trimmed. */
export function cleanMeeting(m: NewMeetingArgs): NewMeetingArgs {
  return {
    ...m,
    place: m.place.trim(),
    topic: m.topic.trim(),
    participants: m.participants
      .filter((p) => p.name.trim())
      .map((p) => (p.department?.trim() ? { name: p.name.trim(), role: p.role, department: p.department.trim() } : { name: p.name.trim(), role: p.role })),
    requests: [...new Set(m.requests.filter(Boolean))],
    decisions: m.decisions.filter((d) => d.decision.trim()).map((d) => ({ request: d.request || null, decision: d.decision.trim() })),
  };
}
