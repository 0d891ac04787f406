// The device's AppStatus, polled every second while a sync runs, twice a second while the relay
// is out of reach (so a walker back in range sees it within a second), and every five seconds
// otherwise. The browser's own "online" event asks at once.

import { api, setAppLockedHandler, toApiError, type ApiError, type AppStatus } from './api';

export const FAST_POLL_MS = 1000;
export const SLOW_POLL_MS = 5000;
export const OFFLINE_POLL_MS = 500;

export const app = $state<{ status: AppStatus | null; error: ApiError | null; loaded: boolean }>({
  status: null,
  error: null,
  loaded: false,
});

let timer: ReturnType<typeof setTimeout> | undefined;
let running = false;

export function setStatus(s: AppStatus): void {
  app.status = s;
  app.error = null;
  app.loaded = true;
}

export async function refreshStatus(): Promise<AppStatus | null> {
  try {
    const s = await api.status();
    setStatus(s);
    return s;
  } catch (e) {
    app.error = toApiError(e);
    app.loaded = true;
    return null;
  }
}

// A command answered `app_locked` (the phone locked itself after 5 idle minutes, say): read the
// status now, once however many screens' calls failed together, so the PIN pad shows at once.
let lockedRefresh: Promise<unknown> | null = null;
setAppLockedHandler(() => {
  lockedRefresh ??= refreshStatus().finally(() => (lockedRefresh = null));
});

export function nextPollDelay(s: AppStatus | null): number {
  if (s?.syncing) return FAST_POLL_MS;
  // A locked phone reports nothing about its relay; the PIN pad asks again when a wait ends.
  if (s?.lock?.locked) return SLOW_POLL_MS;
  if (s && s.enrolled && !s.online) return OFFLINE_POLL_MS;
  return SLOW_POLL_MS;
}

async function tick() {
  if (!running) return;
  await refreshStatus();
  if (!running) return;
  timer = setTimeout(tick, nextPollDelay(app.status));
}

/** The browser (or the phone) says the network is back: ask the core at once. */
function onOnline(): void {
  pollSoon(0);
}

export function startPolling(): void {
  if (running) return;
  running = true;
  if (typeof window !== 'undefined') window.addEventListener('online', onOnline);
  void tick();
}

export function stopPolling(): void {
  running = false;
  clearTimeout(timer);
  if (typeof window !== 'undefined') window.removeEventListener('online', onOnline);
}

/** Poll soon (after a sync was started, for instance). */
export function pollSoon(ms = 300): void {
  if (!running) return;
  clearTimeout(timer);
  timer = setTimeout(tick, ms);
}

export function pendingCount(s: AppStatus | null): number {
  return s ? (s.pending_documents || 0) + (s.pending_photos || 0) : 0;
}

/**
 * Calls `reload` after every finished sync (each new `last_sync_at`), not on the first reading.
 * A screen calls it while it is being created; a sync may bring new lists, statuses or the
 * relay's receipt times.
 */
export function reloadAfterEachSync(reload: () => void): void {
  let seen: number | null | undefined;
  $effect(() => {
    const ls = app.status?.last_sync_at ?? null;
    if (seen !== undefined && ls !== seen) reload();
    seen = ls;
  });
}
