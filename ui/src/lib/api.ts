// The one way the UI talks to the core: the command contract of docs/app-commands.md.
// In the Tauri app every command goes through the single Tauri command `call`; in a browser
// (gridwalk-bridge) it is `POST /api/<cmd>` at the page's own origin.

import { invoke } from '@tauri-apps/api/core';

// ---------------------------------------------------------------------------------------------
// Types (mirroring docs/app-commands.md)

export type ApiError = { code: string; message: string };

export type Progress = {
  docs_to_push: number;
  docs_pushed: number;
  bytes_pushed: number;
  docs_pulled: number;
  bytes_pulled: number;
  pages_pulled: number;
  photos_to_upload: number;
  photo_bytes_to_upload: number;
  photos_uploaded: number;
  photo_bytes_up: number;
  photos_to_download: number;
  photos_downloaded: number;
  photo_bytes_down: number;
  photos_waiting: number;
  done: boolean;
  fraction: number;
  /** What the sync is doing now. */
  stage?: 'sending' | 'receiving' | 'photos_up' | 'photos_down' | 'done';
};

export type Role = 'walker' | 'hall' | 'admin';

/** The app lock (see docs/app-commands.md). */
export type LockStatus = {
  /** Locked: show the PIN pad; every command but `status` and `unlock` answers `app_locked`. */
  locked: boolean;
  /** A walker's phone without a PIN yet (just enrolled): ask her to choose one. */
  pin_needed: boolean;
  /** What opens the store: the walker's PIN, the platform keystore (hall PCs), or nothing yet. */
  lock: 'pin' | 'keystore' | 'none';
  /** Seconds before the next PIN may be tried (after 5 wrong ones; grows). */
  wait_seconds: number | null;
  /** When this device destroyed its records because the hall revoked it (ms since the epoch). */
  wiped_at: number | null;
};

export type AppStatus = {
  /** True while locked from the app's start, with most other fields empty; false after a wipe. */
  enrolled: boolean;
  /** The app lock (absent from cores before the lock: treated as unlocked, no PIN). */
  lock?: LockStatus;
  device_name: string | null;
  walker: { id: string; name: string } | null;
  role: Role | null;
  relay_url: string | null;
  grids: string[];
  online: boolean;
  syncing: boolean;
  progress: Progress | null;
  last_sync_at: number | null;
  last_error: ApiError | null;
  pending_documents: number;
  pending_photos: number;
  /** Photos saved with records that this device is still shrinking and attaching. */
  processing_photos: number;
  /** Photos whose processing failed, waiting for a retry or to be discarded. */
  failed_photos: number;
  /** A hall PC whose staff sign in with their PIN: nothing can be done until someone has. */
  sign_in_required?: boolean;
  /** Who is signed in on this hall PC now. */
  signed_in?: { id: string; name: string } | null;
  /**
   * Stores this phone set aside after a forgotten PIN, oldest first, and how handing their unsent
   * work to this enrolment stands (absent from cores before the hand-over: none).
   */
  held_stores?: HeldStore[];
  now: number;
};

/**
 * A store set aside after a forgotten PIN, as the walker's phone reports it. The core moves it on
 * by itself at each sync; the screen only says where it stands.
 */
export type HeldStore = {
  /** When it was set aside (ms since the epoch). */
  set_aside_at: number;
  /**
   * `no_escrow`: set aside by an app from before the hand-over, only its old PIN opens it;
   * `asked`, `pending`: waiting for the hall to confirm it is her; `released`, `taken`: its work
   * is coming over now; `done`: it came over and the old copy was destroyed.
   */
  state: 'no_escrow' | 'asked' | 'pending' | 'released' | 'taken' | 'done';
  /** What came over (meaningful once `taken` or `done`). */
  taken_documents: number;
  taken_photos: number;
  /** Unsent records of grids she no longer serves, left behind with the old store. */
  left_behind?: number;
};

/**
 * A forgotten-PIN hand-over as the hall console lists it (`handovers`), by names. `from_device`
 * is the old device's id: it says which hand-over `confirm_handover` confirms and is never shown.
 */
export type Handover = {
  from_device: string;
  from_device_name: string;
  to_device_name: string;
  walker: string;
  walker_name: string;
  /** `pending` until an admin confirms; `released` until the new phone took the work; `done`. */
  state: 'pending' | 'released' | 'done';
  requested_at: number;
  confirmed_by_name: string | null;
  confirmed_at: number | null;
  done_at: number | null;
  taken_documents: number | null;
  taken_photos: number | null;
};

/** A person who may work at the hall, as the sign-in screen lists her. */
export type StaffEntry = { id: string; name: string; role: string; has_pin: boolean };

export type Category = { code: string; zh: string; en: string };
export type Department = { id: string; name: string; level: string };
export type WalkerRef = { id: string; name: string; grids: string[] };
export type Reference = { categories: Category[]; departments: Department[]; walkers: WalkerRef[] };

export type GridSummary = {
  id: string;
  name: string;
  village: string | null;
  enterprise_grid: boolean;
  households: number;
  enterprises: number;
  stale_places: number;
};

export type PlaceKind = 'household' | 'enterprise';
export type Place = {
  id: string;
  kind: PlaceKind;
  name: string;
  address: string;
  micro_grid: string | null;
  tags: string[];
  /** Masked ("138****5678"): the full number only through `reveal_phone`, which is logged. */
  phone: string | null;
  last_visited_at: number | null;
  stale: boolean;
};

export type Gps = { lat: number; lon: number; accuracy_m?: number };
export type VisitKind = 'daily' | 'sweep' | 'evening_talk';
export const VISIT_KINDS: VisitKind[] = ['daily', 'sweep', 'evening_talk'];

export type VisitTarget = { kind: PlaceKind; id: string } | { kind: 'place'; address: string };
export type NewVisitArgs = {
  grid: string;
  target: VisitTarget;
  kind: VisitKind;
  companions: string[];
  other_walkers: string[];
  notes: string;
  gps?: Gps;
};
export type VisitSummary = {
  id: string;
  grid: string;
  target_kind: string;
  target_id: string | null;
  kind: VisitKind;
  visited_at: number;
  created_by: string;
  /** The contract leaves the type open: the bridge sends a comma-separated string today. */
  walkers: string[] | string;
  notes: string;
  request_count: number;
  /** Where the visit was recorded, when it was. Not sent by the core yet (asked for). */
  gps?: Gps | null;
};

/** A visit's walkers as a list, whichever way the core sent them. */
export function visitWalkers(v: Pick<VisitSummary, 'walkers'>): string[] {
  if (Array.isArray(v.walkers)) return v.walkers.map(String);
  if (typeof v.walkers === 'string') return v.walkers.split(/[,，、\s]+/).filter(Boolean);
  return [];
}

export type Urgency = 'low' | 'normal' | 'high' | 'urgent';
export const URGENCIES: Urgency[] = ['low', 'normal', 'high', 'urgent'];

export type Reporter =
  | { kind: 'anonymous' }
  | { kind: 'resident'; name: string; phone?: string; household?: string };
// In a `RequestDetail` a resident's `phone` comes masked ("138****5678"), as in `Place`.

/** Whose full phone number `reveal_phone` shows: a place's, or a request's resident reporter's. */
export type PhoneOf = PlaceKind | 'request';

/** A masked phone number ("138****5678", "***"): never sent back as a number. */
export function isMaskedPhone(phone: string | null | undefined): boolean {
  return !!phone && phone.includes('*');
}
export type NewRequestArgs = {
  grid: string;
  category: string;
  description: string;
  urgency: Urgency;
  address: string;
  reporter: Reporter;
  gps?: Gps;
  visit?: string;
  /** Photos of the problem: saved with the request at once, processed in the background. */
  photos?: PhotoUpload[];
};

export type PhotoUpload = { file_name: string; data_base64: string };

/** A photo saved with a record that is not attached yet: still processing, or failed. */
export type WaitingPhoto = {
  id: number;
  role: PhotoRole;
  file_name: string;
  bytes: number;
  state: 'processing' | 'failed';
  error: ApiError | null;
};

export const STATUSES = [
  'new',
  'accepted',
  'assigned',
  'resolved',
  'feedback_given',
  'rated',
  'closed',
  'rejected',
  'merged',
  'reopened',
] as const;
export type Status = (typeof STATUSES)[number];

export type RequestRow = {
  id: string;
  grid: string;
  status: string;
  category: string;
  urgency: Urgency;
  department: string | null;
  owner: string | null;
  deadline: number | null;
  updated_at: number;
  created_at: number;
  address: string;
  description: string;
  overdue: boolean;
  /** The number people read over the phone (261205-7-3); absent from requests raised before numbers. */
  number?: string | null;
};

export type PhotoRole = 'before' | 'after';
export type PhotoRef = { hash: string; role: PhotoRole; removed: boolean; here: boolean };

export type HistoryEvent = {
  id: string;
  type: string;
  at: number;
  relay_received_at: number | null;
  actor: string;
  device: string;
  applied: boolean;
  details: Record<string, unknown>;
};

export type RequestDetail = RequestRow & {
  reporter: Reporter | { kind: 'enterprise'; id: string; contact?: string };
  source: 'visit' | 'walk_in' | 'phone';
  visit: string | null;
  assignee: string | null;
  level: string | null;
  rating: string | null;
  created_by: string;
  photos: PhotoRef[];
  /** Photos saved with the request that are not attached yet (absent from older bridges). */
  waiting_photos?: WaitingPhoto[];
  history: HistoryEvent[];
  allowed: string[];
  /** Where the request was recorded, when it was. */
  gps?: Gps | null;
  /** The request this one was merged into, as a duplicate. */
  merged_into?: LinkedRequest | null;
  /** The duplicates merged into this one, with their reporters (owed feedback too). */
  duplicates?: LinkedRequest[];
};

export type LinkedRequest = {
  id: string;
  number?: string | null;
  description: string;
  address: string;
  status: string;
  reporter: string | null;
  /** Its reporter has been told the outcome (反馈). */
  told: boolean;
};

export type Rating = 'satisfied' | 'basically' | 'not_satisfied';
export const RATINGS: Rating[] = ['satisfied', 'basically', 'not_satisfied'];

export type ActionArgs =
  | { type: 'feedback_given'; note: string }
  | { type: 'rated'; rating: Rating; comment: string }
  | { type: 'progress'; note: string }
  | {
      type: 'triaged';
      decision:
        | { kind: 'accept' }
        | { kind: 'merge_into'; target: string }
        | { kind: 'reject'; reason: string }
        | { kind: 'solved_on_spot'; note: string };
    }
  | { type: 'assigned'; department: string; person?: string; deadline: number; level: 'village' | 'town' | 'county' }
  | { type: 'resolved'; note: string }
  | { type: 'reopened'; reason: string }
  | { type: 'closed'; note: string };

export type RequestsArgs = {
  grid?: string;
  statuses?: string[];
  text?: string;
  overdue_only?: boolean;
  /** Only those whose reporter is owed the outcome (待反馈), merged duplicates included. */
  owed_feedback?: boolean;
  limit?: number;
  offset?: number;
};

/** What an enrolment QR code shows: the relay's address and a one-time code, and until when. */
export type IssuedEnrollment = { code: string; expires_at: number; relay_url: string; link: string };

export type Draft<T = unknown> = { value: T | null; updated_at: number | null };

// ---------------------------------------------------------------------------------------------
// Transport

export type Transport = (cmd: string, args: Record<string, unknown>) => Promise<unknown>;

declare global {
  interface Window {
    __TAURI_INTERNALS__?: unknown;
  }
}

/** Turn whatever a failed call produced into `{code, message}`. */
export function toApiError(e: unknown, fallbackCode = 'unknown'): ApiError {
  if (e && typeof e === 'object') {
    const o = e as Record<string, unknown>;
    if (typeof o.code === 'string') {
      return { code: o.code, message: typeof o.message === 'string' ? o.message : String(o.code) };
    }
    if (typeof o.message === 'string') return { code: fallbackCode, message: o.message };
  }
  if (typeof e === 'string') {
    // A Tauri command may reject with a JSON string.
    try {
      const parsed = JSON.parse(e);
      if (parsed && typeof parsed === 'object' && typeof parsed.code === 'string') return toApiError(parsed, fallbackCode);
    } catch {
      /* plain text */
    }
    return { code: fallbackCode, message: e };
  }
  return { code: fallbackCode, message: String(e) };
}

export function isTauri(): boolean {
  return typeof window !== 'undefined' && window.__TAURI_INTERNALS__ !== undefined && window.__TAURI_INTERNALS__ !== null;
}

async function tauriTransport(cmd: string, args: Record<string, unknown>): Promise<unknown> {
  try {
    return await invoke('call', { cmd, args });
  } catch (e) {
    throw toApiError(e);
  }
}

async function fetchTransport(cmd: string, args: Record<string, unknown>): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch('/api/' + cmd, {
      method: 'POST',
      body: JSON.stringify(args ?? {}),
      headers: { 'content-type': 'application/json' },
    });
  } catch (e) {
    // The bridge itself is not answering (not the relay: that is reported as `network`).
    throw { code: 'transport', message: e instanceof Error ? e.message : String(e) } satisfies ApiError;
  }
  const text = await res.text();
  let body: unknown = null;
  if (text) {
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
  }
  if (!res.ok) {
    const err = toApiError(body, 'http_' + res.status);
    if (!err.message) err.message = res.statusText || 'HTTP ' + res.status;
    throw err;
  }
  return body;
}

/** The transport picked by the environment; tests may replace it with `setTransport`. */
const defaultTransport: Transport = (cmd, args) => (isTauri() ? tauriTransport(cmd, args) : fetchTransport(cmd, args));
let transport: Transport = defaultTransport;

/** Replace the transport (unit tests only); `null` restores the real one. */
export function setTransport(t: Transport | null): void {
  transport = t ?? defaultTransport;
}

/**
 * Told when a command fails with `app_locked` (the phone locked itself while a screen was open):
 * the status module asks for the status again, and the app shows its PIN pad.
 */
let onAppLocked: (() => void) | null = null;
export function setAppLockedHandler(h: (() => void) | null): void {
  onAppLocked = h;
}

/** Call one command. Rejects with `{code, message}`. */
export async function call<T = unknown>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
  try {
    return (await transport(cmd, args)) as T;
  } catch (e) {
    const err = toApiError(e);
    if (err.code === 'app_locked' && cmd !== 'status') onAppLocked?.();
    throw err;
  }
}

// ---------------------------------------------------------------------------------------------
// Typed wrappers, one per command

export const api = {
  status: () => call<AppStatus>('status', {}),
  enroll: (args: { relay_url: string; code: string; device_name: string; pin?: string }) => call<AppStatus>('enroll', args),
  unlock: (pin: string) => call<AppStatus>('unlock', { pin }),
  lock: () => call<AppStatus>('lock', {}),
  /**
   * A forgotten PIN: the locked records are kept aside, still encrypted, and the phone enrols
   * again; their unsent work comes over once the hall confirms it is her (`held_stores`).
   */
  setStoreAside: () => call<AppStatus>('set_store_aside', { confirm: true }),
  /** Choose the phone's PIN, or change it (`currentPin` is needed once it has one). */
  setDevicePin: (pin: string, currentPin?: string) =>
    call<AppStatus>('set_device_pin', currentPin === undefined ? { pin } : { pin, current_pin: currentPin }),
  syncNow: () => call<AppStatus>('sync_now', {}),

  reference: () => call<Reference>('reference', {}),
  grids: () => call<GridSummary[]>('grids', {}),
  /** The hall's quick phrases for visit notes; empty: use the built-in ones. */
  quickPhrases: () => call<string[]>('quick_phrases', {}),
  places: (args: { grid: string; query?: string }) => call<Place[]>('places', args),
  /** A resident's full phone number, shown on a tap; the core records who saw it in its access log. */
  revealPhone: (of: PhoneOf, id: string) => call<{ phone: string | null }>('reveal_phone', { of, id }),

  recordVisit: (args: NewVisitArgs) => call<{ id: string }>('record_visit', args),
  visits: (args: { grid?: string; target?: string; limit?: number } = {}) => call<VisitSummary[]>('visits', args),

  raiseRequest: (args: NewRequestArgs) => call<{ id: string; waiting_photos: WaitingPhoto[] }>('raise_request', args),
  addPhoto: (args: { doc_id: string; role: PhotoRole; file_name: string; data_base64: string }) =>
    call<WaitingPhoto>('add_photo', args),
  staff: () => call<StaffEntry[]>('staff', {}),
  signIn: (person: string, pin: string) => call<AppStatus>('sign_in', { person, pin }),
  signOut: () => call<AppStatus>('sign_out', {}),
  stillHere: () => call<AppStatus>('still_here', {}),
  setPin: (person: string, pin: string, myPin: string) => call<StaffEntry[]>('set_pin', { person, pin, my_pin: myPin }),
  /** A one-time enrolment code for a new device, issued at the relay by the admin signed in. */
  issueEnrollment: (args: { device_name: string; role: 'walker' | 'hall'; walker?: string; grids: string[]; my_pin: string }) =>
    call<IssuedEnrollment>('issue_enrollment', args),
  /** The forgotten-PIN hand-overs the relay holds, newest first (a hall PC only). */
  handovers: () => call<Handover[]>('handovers', {}),
  /**
   * The admin signed in on this hall PC confirms, with her own PIN, that the walker is who the
   * hand-over says; the relay checks the PIN and that she is an admin.
   */
  confirmHandover: (fromDevice: string, myPin: string) =>
    call<Handover>('confirm_handover', { from_device: fromDevice, my_pin: myPin }),
  retryPhoto: (id: number) => call<{ ok: boolean }>('retry_photo', { id }),
  discardPhoto: (id: number) => call<{ ok: boolean }>('discard_photo', { id }),
  requests: (args: RequestsArgs = {}) => call<{ items: RequestRow[]; total: number }>('requests', args),
  request: (id: string) => call<RequestDetail>('request', { id }),
  act: (id: string, action: ActionArgs) => call<RequestDetail>('act', { id, action }),
  photo: (hash: string, thumbnail: boolean) =>
    call<{ mime: string; data_base64: string }>('photo', { hash, thumbnail }),

  draftGet: <T = unknown>(key: string) => call<Draft<T>>('draft_get', { key }),
  draftPut: (key: string, value: unknown) => call<Record<string, never>>('draft_put', { key, value }),
  draftDelete: (key: string) => call<Record<string, never>>('draft_delete', { key }),
};
