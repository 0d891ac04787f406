import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { beforeEach, describe, expect, it } from 'vitest';
import type { RequestDetail as Detail } from '../lib/api';
import { setLang } from '../lib/i18n.svelte';
import { refs } from '../lib/reference.svelte';
import RequestDetail from '../screens/RequestDetail.svelte';
import { stubTransport } from './stub';

const T0 = Date.UTC(2026, 10, 1, 2, 0); // 10:00 Shanghai

function detail(over: Partial<Detail> = {}): Detail {
  return {
    id: 'r-1',
    grid: 'g1',
    status: 'resolved',
    category: 'streetlight',
    urgency: 'normal',
    department: 'dept-urban',
    owner: null,
    deadline: T0 + 7 * 86400_000,
    updated_at: T0,
    created_at: T0,
    address: '三组 12 号',
    description: '路灯不亮',
    overdue: false,
    reporter: { kind: 'anonymous' },
    source: 'visit',
    visit: 'v-1',
    assignee: null,
    level: 'town',
    rating: null,
    created_by: 'w1',
    photos: [
      { hash: 'aaa', role: 'before', removed: false, here: true },
      { hash: 'bbb', role: 'before', removed: false, here: false },
      { hash: 'ccc', role: 'before', removed: true, here: true },
    ],
    history: [
      { id: 'e1', type: 'collected', at: T0, relay_received_at: T0 + 3600_000, actor: 'w1', device: 'phone-1', applied: true, details: {} },
      { id: 'e3', type: 'resolved', at: T0 + 2 * 86400_000, relay_received_at: null, actor: 's1', device: 'hall-pc', applied: true, details: { note: '已更换灯泡' } },
      { id: 'e2', type: 'rated', at: T0 + 86400_000, relay_received_at: T0 + 86400_000, actor: 'w2', device: 'phone-2', applied: false, details: { rating: 'satisfied', comment: '' } },
    ],
    waiting_photos: [],
    allowed: ['feedback_given'],
    ...over,
  };
}

describe('request detail', () => {
  beforeEach(() => {
    refs.reference = {
      categories: [{ code: 'streetlight', zh: '路灯', en: 'Streetlight' }],
      departments: [{ id: 'dept-urban', name: '城建办', level: 'town' }],
      walkers: [{ id: 'w1', name: '张桂英', grids: ['g1'] }],
    };
  });

  it('shows fields, photos (placeholder when not here yet) and the full timeline', async () => {
    const stub = stubTransport({
      request: () => detail(),
      photo: (a) => {
        if (a.hash === 'bbb') throw { code: 'photo_not_here_yet', message: 'not here' };
        return { mime: 'image/jpeg', data_base64: '/9j/' };
      },
    });
    render(RequestDetail, { props: { id: 'r-1' } });
    expect((await screen.findByTestId('detail-category')).textContent).toBe('路灯');
    expect(screen.getByTestId('detail-office').textContent).toBe('城建办');
    expect(screen.getByTestId('detail-status').textContent).toBe('已办结');

    await waitFor(() => expect(screen.getAllByTestId('photo-thumb').map((e) => e.dataset.state)).toEqual(['ok', 'not_here']));
    expect(screen.getByTestId('photo-not-here').textContent).toContain('照片还没同步到本机');
    expect(stub.of('photo')).toEqual([
      { hash: 'aaa', thumbnail: true },
      { hash: 'bbb', thumbnail: true },
    ]);

    const events = screen.getAllByTestId('timeline-event');
    expect(events.map((e) => e.dataset.type)).toEqual(['collected', 'rated', 'resolved']);
    expect(events[0].textContent).toContain('收集');
    expect(events[0].textContent).toContain('张桂英');
    expect(events[0].textContent).toContain('2026-11-01 10:00');
    expect(events[0].textContent).toContain('2026-11-01 11:00');
    expect(events[1].dataset.applied).toBe('false');
    expect(events[1].className).toContain('unapplied');
    expect(events[1].textContent).toContain('未生效');
    expect(events[2].textContent).toContain('已更换灯泡');
    expect(events[2].textContent).toContain('未上传');

    // Only the actions the core allows are offered.
    expect(screen.getByTestId('feedback-submit')).toBeTruthy();
    expect(screen.queryByTestId('rating-submit')).toBeNull();
  });

  it('shows photos still processing, turns them into thumbnails when done, and offers a retry when one failed', async () => {
    let current = detail({
      photos: [],
      waiting_photos: [
        { id: 7, role: 'before', file_name: 'IMG_1.jpg', bytes: 4_000_000, state: 'processing', error: null },
        {
          id: 8,
          role: 'before',
          file_name: 'IMG_2.png',
          bytes: 900,
          state: 'failed',
          error: { code: 'photo_damaged', message: 'the PNG file is damaged or incomplete (x)' },
        },
      ],
    });
    const stub = stubTransport({
      request: () => current,
      photo: () => ({ mime: 'image/jpeg', data_base64: '/9j/' }),
      retry_photo: () => ({ ok: true }),
    });
    render(RequestDetail, { props: { id: 'r-1' } });
    await waitFor(() => expect(screen.getAllByTestId('waiting-photo').map((e) => e.dataset.state)).toEqual(['processing', 'failed']));
    expect(screen.getAllByTestId('waiting-photo-state')[0].textContent).toBe('处理中…');
    expect(screen.getByTestId('waiting-photo-reason').textContent).toContain('IMG_2.png');
    expect(screen.getByTestId('waiting-photo-reason').textContent).toContain('照片已损坏');

    // The worker attaches the first: the screen looks again by itself and shows its thumbnail.
    current = detail({ photos: [{ hash: 'aaa', role: 'before', removed: false, here: true }], waiting_photos: [current.waiting_photos![1]] });
    await waitFor(() => expect(screen.getAllByTestId('photo-thumb').map((e) => e.dataset.state)).toEqual(['ok']), { timeout: 3000 });
    expect(screen.getAllByTestId('waiting-photo')).toHaveLength(1);

    await fireEvent.click(screen.getByTestId('waiting-photo-retry'));
    await waitFor(() => expect(stub.of('retry_photo')).toEqual([{ id: 8 }]));
  });

  // Regression (found by the real-window walk): offline, a photo still processing at the first
  // look stayed "处理中…" for good; only a sync (none offline) reloaded the screen.
  it('regression: keeps looking while a photo is processing, not only once', async () => {
    const processing = { id: 7, role: 'before' as const, file_name: 'IMG_1.jpg', bytes: 4_000_000, state: 'processing' as const, error: null };
    let looks = 0;
    stubTransport({
      request: () => {
        looks += 1;
        return looks < 4
          ? detail({ photos: [], waiting_photos: [processing] })
          : detail({ photos: [{ hash: 'aaa', role: 'before', removed: false, here: true }], waiting_photos: [] });
      },
      photo: () => ({ mime: 'image/jpeg', data_base64: '/9j/' }),
    });
    render(RequestDetail, { props: { id: 'r-1' } });
    await waitFor(() => expect(screen.getAllByTestId('photo-thumb')).toHaveLength(1), { timeout: 5000 });
    expect(looks).toBeGreaterThanOrEqual(4);
    expect(screen.queryByTestId('waiting-photo')).toBeNull();
  });

  it('shows the number a person reads over the phone, or the start of the id for an old request', async () => {
    stubTransport({ request: () => detail({ number: '261205-7-3' }), photo: () => ({ mime: 'image/jpeg', data_base64: '/9j/' }) });
    const { unmount } = render(RequestDetail, { props: { id: 'r-1' } });
    await waitFor(() => expect(screen.getByTestId('detail-number').textContent).toBe('261205-7-3'));
    unmount();
    stubTransport({ request: () => detail({ id: '0b6f1c1e-aaaa-4bbb-8ccc-123456789abc' }), photo: () => ({ mime: 'image/jpeg', data_base64: '/9j/' }) });
    render(RequestDetail, { props: { id: '0b6f1c1e-aaaa-4bbb-8ccc-123456789abc' } });
    await waitFor(() => expect(screen.getByTestId('detail-number').textContent).toBe('0b6f1c1e'));
  });

  it('records feedback and then the resident’s rating with act', async () => {
    let current = detail();
    const stub = stubTransport({
      request: () => current,
      photo: () => ({ mime: 'image/jpeg', data_base64: '/9j/' }),
      act: (a) => {
        const action = a.action as { type: string };
        current =
          action.type === 'feedback_given'
            ? detail({ status: 'feedback_given', allowed: ['rated'] })
            : detail({ status: 'rated', rating: 'basically', allowed: [] });
        return current;
      },
    });
    render(RequestDetail, { props: { id: 'r-1' } });
    await fireEvent.input(await screen.findByTestId('feedback-note'), { target: { value: '路灯已修好' } });
    await fireEvent.click(screen.getByTestId('feedback-submit'));
    await screen.findByTestId('rating-submit');
    expect(stub.of('act')).toEqual([{ id: 'r-1', action: { type: 'feedback_given', note: '路灯已修好' } }]);

    await fireEvent.click(screen.getByTestId('rating-basically'));
    await fireEvent.input(screen.getByTestId('rating-comment'), { target: { value: '还行' } });
    await fireEvent.click(screen.getByTestId('rating-submit'));
    await waitFor(() => expect(screen.getByTestId('detail-rating').textContent).toBe('基本满意'));
    expect(stub.of('act')[1]).toEqual({ id: 'r-1', action: { type: 'rated', rating: 'basically', comment: '还行' } });
  });

  it('counts the deadline down only while the request is open', async () => {
    const now = T0 + 86400_000; // the deadline is six days later
    const { app } = await import('../lib/status.svelte');
    const before = app.status;
    app.status = { ...(before ?? {}), now } as typeof app.status;
    try {
      stubTransport({ request: () => detail({ status: 'assigned', allowed: [] }), photo: () => ({ mime: 'image/jpeg', data_base64: '/9j/' }) });
      const open = render(RequestDetail, { props: { id: 'r-1' } });
      expect((await screen.findByTestId('detail-countdown')).textContent).toBe('(还剩 6 天)');
      open.unmount();
      for (const status of ['resolved', 'feedback_given', 'rated', 'closed']) {
        stubTransport({ request: () => detail({ status, allowed: [] }), photo: () => ({ mime: 'image/jpeg', data_base64: '/9j/' }) });
        const done = render(RequestDetail, { props: { id: 'r-1' } });
        const deadline = await screen.findByTestId('detail-deadline');
        expect(deadline.textContent, status).toContain('2026-11-08');
        expect(deadline.textContent, status).not.toMatch(/还剩|超期|到期/);
        expect(screen.queryByTestId('detail-countdown'), status).toBeNull();
        done.unmount();
      }
    } finally {
      app.status = before;
    }
  });

  it('names a meeting decision as one, not as a triage result', async () => {
    stubTransport({
      request: () =>
        detail({
          history: [
            { id: 'e1', type: 'triaged', at: T0, relay_received_at: T0, actor: 's1', device: 'hall-pc', applied: true, details: { decision: { kind: 'accept' } } },
            { id: 'e2', type: 'meeting_decision', at: T0 + 1000, relay_received_at: T0, actor: 's1', device: 'hall-pc', applied: true, details: { meeting: 'm-1', decision: '利用闲置太阳能路灯约50盏' } },
          ],
        }),
      photo: () => ({ mime: 'image/jpeg', data_base64: '/9j/' }),
    });
    render(RequestDetail, { props: { id: 'r-1' } });
    await screen.findByTestId('request-timeline');
    const [triaged, decided] = screen.getAllByTestId('timeline-event');
    expect(triaged.textContent).toContain('研判结果: 受理');
    expect(decided.textContent).toContain('议事决定: 利用闲置太阳能路灯约50盏');
    expect(decided.textContent).not.toContain('研判');
    expect(decided.textContent).not.toContain('m-1'); // an id means nothing to a reader
  });

  it('speaks English when asked', async () => {
    setLang('en');
    stubTransport({ request: () => detail(), photo: () => ({ mime: 'image/jpeg', data_base64: '/9j/' }) });
    render(RequestDetail, { props: { id: 'r-1' } });
    expect((await screen.findByTestId('detail-category')).textContent).toBe('Streetlight');
    expect(screen.getByTestId('detail-status').textContent).toBe('Resolved');
    expect(screen.getAllByTestId('timeline-relay-time')[2].textContent).toContain('Not yet at the hall');
  });
});
