// A request's history event, told in the user's language: the action's fields as label/value lines.

import { formatDateTime } from './format';
import { has, label, t } from './i18n.svelte';
import { departmentName, shortId, walkerName } from './reference.svelte';

/**
 * One line of an event: a label and a value. A line about another request (a merge's target)
 * names it in `request`, for the screen to show as a link with its description.
 */
export type DetailLine = { key: string; label: string; value: string; request?: string };

function fieldLabel(key: string): string {
  return has('field.' + key) ? t('field.' + key) : key;
}

function scalar(key: string, v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'boolean') return v ? t('common.yes') : t('common.no');
  if (key === 'deadline' || key.endsWith('_at')) {
    // Milliseconds, or (as the core's own event fields serialise) an RFC 3339 string.
    const ms = typeof v === 'number' ? v : Date.parse(String(v));
    return Number.isFinite(ms) ? formatDateTime(ms) : String(v);
  }
  if (key === 'department') return departmentName(String(v));
  if (key === 'person' || key === 'assignee' || key === 'owner') return walkerName(String(v));
  if (key === 'rating') return label('rating', String(v));
  if (key === 'level') return label('level', String(v));
  return String(v);
}

/** The lines worth showing for one event's `details` (the action's fields). */
export function describeDetails(details: unknown, type?: string): DetailLine[] {
  const out: DetailLine[] = [];
  const d = details && typeof details === 'object' && !Array.isArray(details) ? (details as Record<string, unknown>) : null;
  // The event's type: given by the caller (the app sends it beside `details`), or inside.
  const kind = type ?? (typeof d?.type === 'string' ? d.type : undefined);
  if (kind === 'meeting_decision' && d) {
    // What a grid meeting (议事) decided: a meeting decision, not a triage result. The meeting
    // itself is a link beside it (an id means nothing to a reader).
    out.push({ key: 'decision', label: t('field.meetingDecision'), value: scalar('decision', d.decision) });
    walk(Object.fromEntries(Object.entries(d).filter(([k]) => !['decision', 'meeting', 'type'].includes(k))), out);
  } else {
    walk(details, out);
  }
  return out.filter((l) => l.value !== '');
}

function walk(details: unknown, out: DetailLine[]): void {
  if (!details || typeof details !== 'object' || Array.isArray(details)) return;
  for (const [key, v] of Object.entries(details as Record<string, unknown>)) {
    if (key === 'type') continue; // the event's type, shown as its title
    if (key === 'decision' && v && typeof v === 'object') {
      // 研判: {kind: 'reject', reason} (or tagged `decision` inside)
      const d = v as Record<string, unknown>;
      const kind = String(d.kind ?? d.decision ?? d.type ?? '');
      out.push({ key, label: fieldLabel('decision'), value: label('triage', kind) });
      walk(Object.fromEntries(Object.entries(d).filter(([k]) => !['kind', 'decision', 'type'].includes(k))), out);
      continue;
    }
    if (key === 'decision' && typeof v === 'string' && has('triage.' + v)) {
      out.push({ key, label: fieldLabel('decision'), value: label('triage', v) });
      continue;
    }
    if (key === 'photos' && Array.isArray(v)) {
      if (v.length) out.push({ key, label: fieldLabel('photos'), value: t('history.photoCount', { n: v.length }) });
      continue;
    }
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      walk(v, out); // e.g. `assignment: {department, person, deadline, level}`
      continue;
    }
    if (key === 'target' && typeof v === 'string' && v) {
      out.push({ key, label: fieldLabel(key), value: shortId(v), request: v });
      continue;
    }
    if (Array.isArray(v)) {
      out.push({ key, label: fieldLabel(key), value: v.map((x) => scalar(key, x)).join('、') });
      continue;
    }
    out.push({ key, label: fieldLabel(key), value: scalar(key, v) });
  }
}
