// Reference lists (categories, departments, walkers) and the device's grids, loaded once and
// reloaded after a sync brings new ones, and the names a person reads in place of ids: walkers,
// offices and grids by name, devices and requests in a short form. A name looked up and not
// found asks for the lists again (at most every few seconds): a sync may have brought it.

import { api, type GridSummary, type Reference } from './api';
import { locale, t } from './i18n.svelte';

export const refs = $state<{ reference: Reference | null; grids: GridSummary[] | null }>({
  reference: null,
  grids: null,
});

export async function loadReference(): Promise<Reference | null> {
  try {
    const r = await api.reference();
    // The same lists again change nothing: screens that follow them are not redrawn.
    if (JSON.stringify(r) !== JSON.stringify(refs.reference)) refs.reference = r;
  } catch {
    /* keep what we had; screens fall back to codes */
  }
  return refs.reference;
}

export async function loadGrids(): Promise<GridSummary[] | null> {
  const g = await api.grids();
  if (JSON.stringify(g) !== JSON.stringify(refs.grids)) refs.grids = g;
  return refs.grids;
}

/** How long after a load a missed name may ask for the lists again. */
export const RELOAD_AFTER_MISS_MS = 5000;
let lastReload = 0;
const missedOnce = new Set<string>();

/**
 * A name was not found: load the lists again, once per id (a name nobody listed stays unlisted
 * until the next sync reloads them anyway), not during the render that asked (that would change
 * state while it is read) and not more often than every RELOAD_AFTER_MISS_MS.
 */
function missed(key: string): void {
  if (missedOnce.has(key)) return;
  const now = Date.now();
  if (now - lastReload < RELOAD_AFTER_MISS_MS) return;
  missedOnce.add(key);
  lastReload = now;
  setTimeout(() => {
    void loadReference();
    loadGrids().catch(() => {});
  }, 0);
}

/** A name to show, and whether it is a known name (else it is an id or a name nobody listed). */
export type Named = { text: string; known: boolean };

const unknown = (text: string): Named => {
  missed(text);
  return { text, known: false };
};

export function categoryName(code: string): string {
  const c = refs.reference?.categories.find((x) => x.code === code);
  if (!c) return code;
  return (locale.lang === 'en' ? c.en : c.zh) || c.zh || c.en || code;
}

export function office(id: string | null | undefined): Named {
  if (!id) return { text: '', known: true };
  const d = refs.reference?.departments.find((x) => x.id === id);
  return d ? { text: d.name, known: true } : unknown(id);
}
export function departmentName(id: string | null | undefined): string {
  return office(id).text;
}

/**
 * A person: a walker id, or a name the core already put in its place (it names the people its
 * grid's roster knows). Anything else (a hall PC's own identity, a walker of another grid) is
 * shown as it is, marked as not known.
 */
export function person(idOrName: string | null | undefined): Named {
  if (!idOrName) return { text: '', known: true };
  const walkers = refs.reference?.walkers ?? [];
  const byId = walkers.find((w) => w.id === idOrName);
  if (byId) return { text: byId.name, known: true };
  if (walkers.some((w) => w.name === idOrName)) return { text: idOrName, known: true };
  return unknown(idOrName);
}
export function walkerName(id: string | null | undefined): string {
  return person(id).text;
}

/** Whoever owns a request now (首问责任制): an office once assigned, else a person. */
export function owner(id: string | null | undefined): Named {
  if (!id) return { text: '', known: true };
  const d = refs.reference?.departments.find((x) => x.id === id);
  return d ? { text: d.name, known: true } : person(id);
}
export function ownerName(id: string | null | undefined): string {
  return owner(id).text;
}

export function grid(id: string | null | undefined): Named {
  if (!id) return { text: '', known: true };
  const g = refs.grids?.find((x) => x.id === id);
  return g ? { text: g.name, known: true } : unknown(id);
}
export function gridName(id: string | null | undefined): string {
  return grid(id).text;
}

/** The walker whose name this is, when exactly one on the roster has it. */
export function walkerByName(name: string): { id: string; name: string } | null {
  const n = name.trim();
  if (!n) return null;
  const found = (refs.reference?.walkers ?? []).filter((w) => w.name === n);
  return found.length === 1 ? found[0] : null;
}

/** An id the relay made for a device at enrolment: `dev-` and hex. */
const DEVICE_ID = /^dev-[0-9a-f]{6,}$/i;

/**
 * A device as a person can read it: a device the relay enrolled is known by the last four
 * characters of its id ("设备尾号 6e59", as phones and bank cards are); a device named by its
 * owner (a hall PC set up from the command line) by that name. The core does not name devices
 * to other devices yet.
 */
export function deviceText(device: string | null | undefined): string {
  if (!device) return '';
  return DEVICE_ID.test(device) ? t('device.tail', { tail: device.slice(-4) }) : device;
}

/** A request's uuid in a short form (its first 8 characters), for where nothing else names it. */
export function shortId(id: string): string {
  return id.slice(0, 8);
}

/**
 * The number a person reads and types (261205-7-3: day, device, count); a request raised
 * before numbers existed shows the short form of its id instead.
 */
export function requestNumber(r: { id: string; number?: string | null }): string {
  return r.number || shortId(r.id);
}
