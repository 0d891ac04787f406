// A stubbed transport for component tests: answers by command name and records every call.
import { vi } from 'vitest';
import { setTransport } from '../lib/api';

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
