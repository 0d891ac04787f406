// Residents' phone numbers shown masked, the full number on a logged tap, and the admin's access
// log (issue 14). The request form's side of it is in RequestForm.test.ts.
import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { beforeEach, describe, expect, it } from 'vitest';
import type { RequestDetail as Detail } from '../lib/api';
import { setLang } from '../lib/i18n.svelte';
import { refs } from '../lib/reference.svelte';
import { forgetBriefs } from '../lib/requests';
import Admin from '../screens/hall/Admin.svelte';
import PlaceView from '../screens/PlaceView.svelte';
import RequestDetail from '../screens/RequestDetail.svelte';
import { stubTransport } from './stub';

const T0 = Date.UTC(2026, 10, 1, 2, 0); // 10:00 Shanghai
const GRIDS = [{ id: 'g1', name: '马厍村第1网格', village: '马厍村', enterprise_grid: false, households: 10, enterprises: 1, stale_places: 0 }];
const HOUSEHOLD = { id: 'h-3', kind: 'household', name: '王雪芬', address: '三组 3 号', micro_grid: null, tags: [], phone: '130****1231', last_visited_at: null, stale: false };
const ENTERPRISE = { id: 'e-1', kind: 'enterprise', name: '新华五金厂', address: '工业路 8 号', micro_grid: null, tags: [], phone: '057****1234', last_visited_at: null, stale: false };

function detail(over: Partial<Detail> = {}): Detail {
  return {
    id: 'r-1',
    grid: 'g1',
    status: 'new',
    category: 'streetlight',
    urgency: 'normal',
    department: null,
    owner: null,
    deadline: null,
    updated_at: T0,
    created_at: T0,
    address: '三组 3 号',
    description: '路灯不亮',
    overdue: false,
    number: '261101-7-3',
    reporter: { kind: 'resident', name: '王雪芬', phone: '130****1231', household: 'h-3' },
    source: 'visit',
    visit: null,
    assignee: null,
    level: null,
    rating: null,
    created_by: 'w1',
    photos: [],
    history: [],
    waiting_photos: [],
    allowed: [],
    ...over,
  };
}

beforeEach(() => {
  refs.reference = {
    categories: [{ code: 'streetlight', zh: '路灯', en: 'Streetlight' }],
    departments: [],
    walkers: [{ id: 'w1', name: '张桂英', grids: ['g1'] }],
  };
  refs.grids = GRIDS;
  forgetBriefs();
});

describe('a place’s phone number', () => {
  it('is shown masked; a tap asks the core for the full one (logged there) and makes it a tel: link', async () => {
    const stub = stubTransport({
      places: () => [HOUSEHOLD],
      visits: () => [],
      reveal_phone: () => ({ phone: '13092331231' }),
    });
    render(PlaceView, { props: { grid: 'g1', placeId: 'h-3' } });
    expect((await screen.findByTestId('place-phone-masked')).textContent).toBe('130****1231');
    expect(screen.queryByTestId('place-phone')).toBeNull();
    expect(stub.of('reveal_phone')).toEqual([]);

    const reveal = screen.getByTestId('place-phone-reveal');
    expect(reveal.textContent).toBe('显示号码');
    await fireEvent.click(reveal);
    const link = (await screen.findByTestId('place-phone')) as HTMLAnchorElement;
    expect(link.textContent).toBe('13092331231');
    expect(link.getAttribute('href')).toBe('tel:13092331231');
    expect(screen.queryByTestId('place-phone-masked')).toBeNull();
    expect(screen.queryByTestId('place-phone-reveal')).toBeNull();
    expect(stub.of('reveal_phone')).toEqual([{ of: 'household', id: 'h-3' }]);
  });

  it('asks by the place’s kind, and says the core’s error in the user’s language', async () => {
    setLang('en');
    let fail = true;
    const stub = stubTransport({
      places: () => [ENTERPRISE],
      visits: () => [],
      reveal_phone: () => {
        if (fail) throw { code: 'not_found', message: 'no enterprise e-1' };
        return { phone: '0573-8501234' };
      },
    });
    render(PlaceView, { props: { grid: 'g1', placeId: 'e-1' } });
    const reveal = await screen.findByTestId('place-phone-reveal');
    expect(reveal.textContent).toBe('Show number');
    await fireEvent.click(reveal);
    expect((await screen.findByTestId('place-phone-error')).textContent).toContain('was not found');
    expect(screen.getByTestId('place-phone-masked').textContent).toBe('057****1234');
    fail = false;
    await fireEvent.click(screen.getByTestId('place-phone-reveal'));
    expect(((await screen.findByTestId('place-phone')) as HTMLAnchorElement).getAttribute('href')).toBe('tel:0573-8501234');
    expect(screen.queryByTestId('place-phone-error')).toBeNull();
    expect(stub.of('reveal_phone')).toEqual([
      { of: 'enterprise', id: 'e-1' },
      { of: 'enterprise', id: 'e-1' },
    ]);
  });
});

describe('a request’s reporter', () => {
  it('shows her name and masked number; the reveal asks by the request', async () => {
    const stub = stubTransport({
      request: () => detail(),
      reveal_phone: () => ({ phone: '13092331231' }),
    });
    render(RequestDetail, { props: { id: 'r-1' } });
    const line = await screen.findByTestId('detail-reporter');
    expect(line.textContent).toContain('王雪芬');
    expect(screen.getByTestId('reporter-phone-masked').textContent).toBe('130****1231');
    expect(line.textContent).not.toMatch(/13092331231/);
    await fireEvent.click(screen.getByTestId('reporter-phone-reveal'));
    const link = (await screen.findByTestId('reporter-phone')) as HTMLAnchorElement;
    expect(link.getAttribute('href')).toBe('tel:13092331231');
    expect(stub.of('reveal_phone')).toEqual([{ of: 'request', id: 'r-1' }]);
  });

  it('offers no reveal without a number, nor for an anonymous reporter', async () => {
    stubTransport({ request: () => detail({ reporter: { kind: 'resident', name: '王雪芬' } }) });
    render(RequestDetail, { props: { id: 'r-1' } });
    expect((await screen.findByTestId('detail-reporter')).textContent?.trim()).toBe('王雪芬');
    expect(screen.queryByTestId('reporter-phone-reveal')).toBeNull();
  });
});

describe('the admin’s access log', () => {
  const LISTS = {
    villages: [],
    grids: [{ id: 'g1', name: '马厍村第1网格', enterprise_grid: false, village: 'v1', village_name: '马厍村' }],
    departments: [],
    walkers: [{ id: 'w1', name: '张桂英', phone: null, role: 'walker', work_group: null, grids: ['g1'] }],
  };
  const LOG = [
    // Lines of two devices, each numbered by its own device: the walker's phone's line 3 and the
    // hall PC's line 3 are two lines.
    { seq: 3, at: T0, person: 'w1', device: 'dev-00aa11', device_name: '张桂英的手机', kind: 'reveal_phone', subject: 'household:h-3', detail: '' },
    { seq: 4, at: T0 + 3_600_000, person: 'hall-2', device: 'hall-pc', device_name: '服务中心前台电脑', kind: 'export_monthly', subject: '马厍镇 2026-11', detail: '12 requests in 2 sheets to /data/exports/x.xlsx' },
    { seq: 3, at: T0 + 1_800_000, person: 'hall-1', device: 'hall-pc', device_name: '服务中心前台电脑', kind: 'reveal_phone', subject: 'request:r-1', detail: '' },
    { seq: 2, at: T0 + 900_000, person: 'stranger-9', device: 'hall-pc', device_name: '服务中心前台电脑', kind: 'export_requests', subject: 'all grids', detail: '30 requests as Csv to /tmp/r.csv' },
    { seq: 5, at: T0 + 7_200_000, person: 'hall-1', device: 'hall-pc', device_name: '服务中心前台电脑', kind: 'export_reference', subject: 'g1', detail: '10 households, 1 enterprises, 3 walkers as CSV to /tmp/ref' },
  ];
  const handlers = (log: () => unknown) => ({
    staff: () => [
      { id: 'hall-1', name: '陈国平', role: 'admin', has_pin: true },
      { id: 'hall-2', name: '王丽华', role: 'hall', has_pin: true },
    ],
    admin_lists: () => LISTS,
    access_log: log,
    places: () => [HOUSEHOLD],
    request: () => detail(),
    reference: () => refs.reference,
    grids: () => GRIDS,
  });

  it('lists views and exports newest first, by names and in words', async () => {
    const stub = stubTransport(handlers(() => LOG));
    render(Admin);
    const section = await screen.findByTestId('access-log');
    expect(section.querySelector('h3')?.textContent).toBe('查看与导出记录');
    await waitFor(() => expect(screen.getAllByTestId('access-log-row')).toHaveLength(5));
    const rows = screen.getAllByTestId('access-log-row');
    expect(rows.map((r) => r.dataset.seq)).toEqual(['5', '4', '3', '2', '3']);
    const cells = (id: string) => screen.getAllByTestId(id).map((c) => c.textContent?.trim());
    expect(cells('access-log-person')).toEqual(['陈国平', '王丽华', '陈国平', 'stranger-9', '张桂英']);
    // On which device, by its name: the walker's reveal on her phone too.
    expect(cells('access-log-device')).toEqual(['服务中心前台电脑', '服务中心前台电脑', '服务中心前台电脑', '服务中心前台电脑', '张桂英的手机']);
    // A person nobody lists is shown as the id, in grey.
    expect(screen.getAllByTestId('access-log-person')[3].querySelector('[data-unlisted="true"]')).toBeTruthy();
    expect(cells('access-log-kind')).toEqual(['导出基础名单', '导出驻网办事清单', '查看完整号码', '导出诉求', '查看完整号码']);
    await waitFor(() =>
      expect(cells('access-log-subject')).toEqual(['马厍村第1网格', '马厍镇 2026-11', '诉求 261101-7-3', '全部网格', '王雪芬']),
    );
    expect(cells('access-log-detail')[1]).toBe('12 requests in 2 sheets to /data/exports/x.xlsx');
    expect(stub.of('access_log')).toEqual([{ limit: 200 }]);
    expect(stub.of('request')).toEqual([{ id: 'r-1' }]);
    // No raw id where a name is known.
    expect(section.textContent).not.toMatch(/\bh-3\b|\bhall-1\b|\bw1\b|\br-1\b|dev-00aa11|hall-pc/);
  });

  it('names the actions in English too', async () => {
    setLang('en');
    stubTransport(handlers(() => LOG));
    render(Admin);
    await waitFor(() => expect(screen.getAllByTestId('access-log-row')).toHaveLength(5));
    expect(screen.getByTestId('access-log').querySelector('h3')?.textContent).toBe('Views and exports');
    expect(screen.getAllByTestId('access-log-kind')[0].textContent).toBe('Exported reference lists');
  });

  it('is not shown to anyone but an admin', async () => {
    const stub = stubTransport(
      handlers(() => {
        throw { code: 'forbidden', message: 'only an admin reads the access log' };
      }),
    );
    render(Admin);
    await screen.findByTestId('admin-staff');
    await waitFor(() => expect(stub.of('access_log')).toHaveLength(1));
    await new Promise((r) => setTimeout(r, 10));
    expect(screen.queryByTestId('access-log')).toBeNull();
    expect(screen.queryByTestId('access-log-error')).toBeNull();
  });
});
