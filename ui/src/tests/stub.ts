// A stubbed transport for component tests: answers by command name and records every call.
import { vi } from 'vitest';
import { setTransport, type AppStatus } from '../lib/api';

export type Handler = (args: Record<string, unknown>) => unknown;

export function stubTransport(handlers: Record<string, Handler>) {
  const calls: { cmd: string; args: Record<string, unknown> }[] = [];
  const fn = vi.fn(async (cmd: string, args: Record<string, unknown>) => {
    calls.push({ cmd, args: JSON.parse(JSON.stringify(args)) });
    const h = handlers[cmd];
    if (!h) throw { code: 'not_stubbed', message: cmd };
    return h(args);
  });
  setTransport(fn);
  return { calls, of: (cmd: string) => calls.filter((c) => c.cmd === cmd).map((c) => c.args) };
}

/** An enrolled device's status with nothing waiting and nobody named, for tests to fill in. */
export function baseStatus(more: Partial<AppStatus> = {}): AppStatus {
  return {
    enrolled: true,
    device_name: null,
    walker: null,
    role: null,
    relay_url: null,
    grids: [],
    online: false,
    syncing: false,
    progress: null,
    last_sync_at: null,
    last_error: null,
    pending_documents: 0,
    pending_photos: 0,
    processing_photos: 0,
    failed_photos: 0,
    now: Date.now(),
    ...more,
  };
}
