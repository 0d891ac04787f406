import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

// The real @tauri-apps/api `invoke` hands the call to window.__TAURI_INTERNALS__.invoke(cmd, args, options).
const invoke = vi.fn();

import { api, call, isTauri, setAppLockedHandler, setTransport, toApiError } from '../lib/api';

function jsonResponse(status: number, body: unknown, statusText = ''): Response {
  return new Response(typeof body === 'string' ? body : JSON.stringify(body), {
    status,
    statusText,
    headers: { 'content-type': 'application/json' },
  });
}

describe('transport: Tauri', () => {
  beforeEach(() => {
    (window as unknown as Record<string, unknown>).__TAURI_INTERNALS__ = { invoke };
    invoke.mockReset();
  });
  afterEach(() => {
    delete (window as unknown as Record<string, unknown>).__TAURI_INTERNALS__;
  });

  it('invokes the single `call` command with {cmd, args}', async () => {
    const fetchSpy = vi.spyOn(globalThis, 'fetch');
    invoke.mockResolvedValue({ items: [], total: 0 });
    expect(isTauri()).toBe(true);
    const r = await call('requests', { grid: 'g1' });
    expect(r).toEqual({ items: [], total: 0 });
    expect(invoke).toHaveBeenCalledTimes(1);
    expect(invoke.mock.calls[0].slice(0, 2)).toEqual(['call', { cmd: 'requests', args: { grid: 'g1' } }]);
    expect(fetchSpy).not.toHaveBeenCalled();
    fetchSpy.mockRestore();
  });

  it('passes {code, message} rejections through', async () => {
    invoke.mockRejectedValue({ code: 'unknown_grid', message: "unknown grid 'g9'" });
    await expect(call('places', { grid: 'g9' })).rejects.toEqual({ code: 'unknown_grid', message: "unknown grid 'g9'" });
  });

  it('maps a plain string rejection to {code: unknown, message}', async () => {
    invoke.mockRejectedValue('command call not found');
    await expect(call('status')).rejects.toEqual({ code: 'unknown', message: 'command call not found' });
  });

  it('maps a JSON string rejection to its {code, message}', async () => {
    invoke.mockRejectedValue('{"code":"network","message":"cannot reach the relay"}');
    await expect(call('sync_now')).rejects.toEqual({ code: 'network', message: 'cannot reach the relay' });
  });
});

describe('transport: browser (bridge)', () => {
  let fetchMock: ReturnType<typeof vi.fn>;
  beforeEach(() => {
    fetchMock = vi.fn();
    vi.stubGlobal('fetch', fetchMock);
    invoke.mockReset();
  });
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  it('POSTs JSON to /api/<cmd> and resolves with the body', async () => {
    fetchMock.mockResolvedValue(jsonResponse(200, { id: 'r-1' }));
    expect(isTauri()).toBe(false);
    const r = await call('raise_request', { grid: 'g1', description: '路灯不亮' });
    expect(r).toEqual({ id: 'r-1' });
    expect(fetchMock).toHaveBeenCalledTimes(1);
    const [url, init] = fetchMock.mock.calls[0];
    expect(url).toBe('/api/raise_request');
    expect(init.method).toBe('POST');
    expect(init.headers).toEqual({ 'content-type': 'application/json' });
    expect(JSON.parse(init.body)).toEqual({ grid: 'g1', description: '路灯不亮' });
    expect(invoke).not.toHaveBeenCalled();
  });

  it('rejects with the body {code, message} on a 4xx', async () => {
    fetchMock.mockResolvedValue(jsonResponse(400, { code: 'invalid_input', message: 'invalid description: must not be empty' }));
    await expect(call('raise_request', {})).rejects.toEqual({ code: 'invalid_input', message: 'invalid description: must not be empty' });
  });

  it('rejects with http_<status> when a 5xx has no JSON body', async () => {
    fetchMock.mockResolvedValue(new Response('Bad Gateway', { status: 502 }));
    await expect(call('status')).rejects.toEqual({ code: 'http_502', message: 'Bad Gateway' });
  });

  it('rejects with code transport when the bridge does not answer', async () => {
    fetchMock.mockRejectedValue(new TypeError('Failed to fetch'));
    await expect(call('status')).rejects.toEqual({ code: 'transport', message: 'Failed to fetch' });
  });

  it('typed wrappers send the contract’s argument shapes', async () => {
    fetchMock.mockImplementation(async () => jsonResponse(200, {}));
    await api.act('r-7', { type: 'rated', rating: 'satisfied', comment: '' });
    await api.photo('abc', true);
    await api.draftPut('visit:h1', { notes: 'x' });
    await api.enroll({ relay_url: 'http://127.0.0.1:1', code: 'C', device_name: 'D' });
    await api.addPhoto({ doc_id: 'r-7', role: 'before', file_name: 'a.jpg', data_base64: 'AA==' });
    const calls = fetchMock.mock.calls.map(([u, i]) => [u, JSON.parse(i.body)]);
    expect(calls).toEqual([
      ['/api/act', { id: 'r-7', action: { type: 'rated', rating: 'satisfied', comment: '' } }],
      ['/api/photo', { hash: 'abc', thumbnail: true }],
      ['/api/draft_put', { key: 'visit:h1', value: { notes: 'x' } }],
      ['/api/enroll', { relay_url: 'http://127.0.0.1:1', code: 'C', device_name: 'D' }],
      ['/api/add_photo', { doc_id: 'r-7', role: 'before', file_name: 'a.jpg', data_base64: 'AA==' }],
    ]);
  });
});

describe('toApiError', () => {
  it('normalises whatever was thrown', () => {
    expect(toApiError({ code: 'x', message: 'y' })).toEqual({ code: 'x', message: 'y' });
    expect(toApiError({ code: 'x' })).toEqual({ code: 'x', message: 'x' });
    expect(toApiError(new Error('boom'))).toEqual({ code: 'unknown', message: 'boom' });
    expect(toApiError(42)).toEqual({ code: 'unknown', message: '42' });
  });
});

describe('a locked app', () => {
  afterEach(() => setAppLockedHandler(null));

  it('tells the status module when a command answers app_locked, and sends the lock commands as documented', async () => {
    const locked = vi.fn();
    setAppLockedHandler(locked);
    const sent: [string, unknown][] = [];
    setTransport(async (cmd, args) => {
      sent.push([cmd, args]);
      if (cmd === 'grids' || cmd === 'status') throw { code: 'app_locked', message: 'the app is locked' };
      return {};
    });
    await expect(api.grids()).rejects.toEqual({ code: 'app_locked', message: 'the app is locked' });
    expect(locked).toHaveBeenCalledTimes(1);
    // The status itself never asks for the status again.
    await expect(api.status()).rejects.toMatchObject({ code: 'app_locked' });
    expect(locked).toHaveBeenCalledTimes(1);

    await api.unlock('2580');
    await api.lock();
    await api.setDevicePin('1357');
    await api.setDevicePin('1357', '2580');
    expect(sent.slice(2)).toEqual([
      ['unlock', { pin: '2580' }],
      ['lock', {}],
      ['set_device_pin', { pin: '1357' }],
      ['set_device_pin', { pin: '1357', current_pin: '2580' }],
    ]);
  });
});
