import { fireEvent, render, screen } from '@testing-library/svelte';
import { beforeEach, describe, expect, it } from 'vitest';
import type { RequestRow } from '../lib/api';
import { refs } from '../lib/reference.svelte';
import Inbox from '../screens/hall/Inbox.svelte';
import Work from '../screens/hall/Work.svelte';
import { stubTransport } from './stub';

const T0 = Date.UTC(2026, 10, 1, 2, 0);

function row(id: string, over: Partial<RequestRow> = {}): RequestRow {
  return {
    id,
    grid: 'g1',
    status: 'new',
    category: 'streetlight',
    urgency: 'normal',
    department: null,
    owner: 'w1',
    deadline: null,
    updated_at: T0,
    created_at: T0,
    address: '三组 12 号',
    description: '路灯不亮 ' + id,
    overdue: false,
    ...over,
  } as RequestRow;
}

describe('hall tables', () => {
  beforeEach(() => {
    location.hash = '#/hall/inbox';
    refs.reference = {
      categories: [{ code: 'streetlight', zh: '路灯', en: 'Streetlight' }],
      departments: [{ id: 'dept-urban', name: '城建办', level: 'town' }],
      walkers: [{ id: 'w1', name: '张桂英', grids: ['g1'] }],
    };
  });

  it('a click anywhere on an inbox row, or Enter on it, opens the request', async () => {
    stubTransport({ inbox: () => ({ items: [row('r-1'), row('r-2')], total: 2 }) });
    render(Inbox);
    const rows = await screen.findAllByTestId('inbox-item');
    expect(rows.map((r) => r.tabIndex)).toEqual([0, 0]);
    // The description's link stays (same target) but is not a second tab stop.
    expect(screen.getAllByTestId('inbox-open').map((a) => a.getAttribute('tabindex'))).toEqual(['-1', '-1']);

    await fireEvent.click(rows[1].querySelectorAll('td')[4]); // the address cell
    expect(location.hash).toBe('#/hall/request/r-2');

    location.hash = '#/hall/inbox';
    await fireEvent.keyDown(rows[0], { key: 'Enter' });
    expect(location.hash).toBe('#/hall/request/r-1');

    location.hash = '#/hall/inbox';
    await fireEvent.keyDown(rows[0], { key: 'a' });
    expect(location.hash).toBe('#/hall/inbox');
    expect(screen.getAllByTestId('inbox-owner')[0].textContent).toBe('张桂英');
  });

  it('the overdue view says the same number of days under the deadline and in its column', async () => {
    const { app } = await import('../lib/status.svelte');
    const before = app.status;
    const now = Date.UTC(2026, 10, 27, 2); // 10:00 on 2026-11-27 in Shanghai
    app.status = { ...(before ?? {}), now } as typeof app.status;
    try {
      const deadline = Date.UTC(2025, 11, 17) - 8 * 3600_000 - 1; // the end of 2025-12-16 in Shanghai
      stubTransport({ requests: () => ({ items: [row('r-9', { status: 'assigned', department: 'dept-urban', owner: 'dept-urban', deadline, overdue: true })], total: 1 }) });
      render(Work, { props: { overdueOnly: true } });
      const item = await screen.findByTestId('work-item');
      expect(item.querySelector('[data-testid="work-countdown"]')!.textContent).toBe('超期 346 天');
      expect(item.querySelector('[data-testid="work-days-late"]')!.textContent).toBe('346');
      expect(item.textContent).toContain('城建办'); // the owner is an office: its name, not its id
      expect(item.textContent).not.toContain('dept-urban');
      await fireEvent.click(item.querySelector('td')!);
      expect(location.hash).toBe('#/hall/request/r-9');
    } finally {
      app.status = before;
    }
  });
});
