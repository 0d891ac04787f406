// Names, not ids; GPS shown; pick, don't type (issue 16).
import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { RequestDetail as Detail, RequestRow } from '../lib/api';
import { coordsText, geoUri, isGps, webMapUrl } from '../lib/gps';
import { describeDetails } from '../lib/history';
import { setLang } from '../lib/i18n.svelte';
import { deviceText, grid, office, owner, person, refs, shortId } from '../lib/reference.svelte';
import { clip, forgetBriefs } from '../lib/requests';
import { app } from '../lib/status.svelte';
import GpsButton from '../components/GpsButton.svelte';
import HallRequest from '../screens/hall/HallRequest.svelte';
import MeetingView from '../screens/hall/MeetingView.svelte';
import RequestDetail from '../screens/RequestDetail.svelte';
import RequestForm from '../screens/RequestForm.svelte';
import VisitForm from '../screens/VisitForm.svelte';
import { stubTransport } from './stub';

const T0 = Date.UTC(2026, 10, 1, 2, 0);
const UUID = '0b6f1c1e-2d3a-4c5b-8e9f-0a1b2c3d4e5f';
const TARGET = '7c9e6679-7425-40de-944b-e07fc1f90ae7';
const MACHINE_IDS = [/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/, /\bdev-[0-9a-f]{6,}/, /\bdept-[a-z0-9_-]+/];
const GRIDS = [{ id: 'g1', name: '马厩村第1网格', village: '马厩村', enterprise_grid: false, households: 10, enterprises: 0, stale_places: 0 }];

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
  };
}

function detail(over: Partial<Detail> = {}): Detail {
  return {
    ...row(UUID, { status: 'merged', department: 'dept-urban', owner: 'dept-urban', description: '3组门口路灯坏了' }),
    reporter: { kind: 'anonymous' },
    source: 'walk_in',
    visit: null,
    assignee: null,
    level: null,
    rating: null,
    created_by: '张桂英',
    photos: [],
    history: [
      { id: 'e1', type: 'collected', at: T0, relay_received_at: T0, actor: '张桂英', device: 'dev-a2fd1b1ccddd6e59', applied: true, details: {} },
      {
        id: 'e2',
        type: 'triaged',
        at: T0 + 1000,
        relay_received_at: null,
        actor: 'hall-pc',
        device: 'dev-02a0875b46138010',
        applied: true,
        details: { decision: { decision: 'merge_into', target: TARGET } },
      },
    ],
    allowed: [],
    ...over,
  };
}

function noMachineIds(text: string) {
  for (const re of MACHINE_IDS) expect(text, String(re)).not.toMatch(re);
}

beforeEach(() => {
  refs.reference = {
    categories: [{ code: 'streetlight', zh: '路灯', en: 'Streetlight' }],
    departments: [{ id: 'dept-urban', name: '城建办', level: 'town' }],
    walkers: [
      { id: 'w1', name: '张桂英', grids: ['g1'] },
      { id: 'w2', name: '孙伟', grids: ['g1'] },
      { id: 'w9', name: '钱阿三', grids: ['g2'] },
    ],
  };
  refs.grids = GRIDS;
  forgetBriefs();
});

describe('names in place of ids', () => {
  it('names walkers, offices, owners and grids; marks what no list names', () => {
    expect(person('w1')).toEqual({ text: '张桂英', known: true });
    expect(person('张桂英')).toEqual({ text: '张桂英', known: true }); // the core already named her
    expect(person('hall-pc')).toEqual({ text: 'hall-pc', known: false });
    expect(office('dept-urban')).toEqual({ text: '城建办', known: true });
    expect(office('dept-gone')).toEqual({ text: 'dept-gone', known: false });
    expect(owner('dept-urban').text).toBe('城建办');
    expect(owner('w2').text).toBe('孙伟');
    expect(grid('g1')).toEqual({ text: '马厩村第1网格', known: true });
    expect(grid('v09-g01').known).toBe(false);
  });

  it('shortens devices and request numbers', () => {
    expect(deviceText('dev-a2fd1b1ccddd6e59')).toBe('设备尾号 6e59');
    expect(deviceText('hall-pc')).toBe('hall-pc');
    setLang('en');
    expect(deviceText('dev-a2fd1b1ccddd6e59')).toBe('device …6e59');
    expect(shortId(UUID)).toBe('0b6f1c1e');
    expect(clip('一二三四五', 4)).toBe('一二三…');
    expect(clip('一二三', 4)).toBe('一二三');
  });

  it('a merge names the request it went into, for a link', () => {
    const lines = describeDetails({ decision: { decision: 'merge_into', target: TARGET } });
    expect(lines).toEqual([
      { key: 'decision', label: '研判结果', value: '合并到其他诉求' },
      { key: 'target', label: '合并到', value: '7c9e6679', request: TARGET },
    ]);
  });

  it('the request detail reads with names: people, offices, devices in short, the merge target by its description', async () => {
    stubTransport({
      request: (a) => (a.id === TARGET ? detail({ id: TARGET, description: '马社村3组门口路灯不亮一周了', status: 'new' }) : detail()),
      photo: () => ({ mime: 'image/jpeg', data_base64: '/9j/' }),
    });
    render(RequestDetail, { props: { id: UUID } });
    const link = await screen.findByText('马社村3组门口路灯不亮一周了');
    expect(link.getAttribute('href')).toBe(`#/request/${TARGET}`);
    expect(screen.getByTestId('detail-number').textContent).toBe('0b6f1c1e');
    expect(screen.getByTestId('detail-office').textContent).toBe('城建办');
    const [collected, triaged] = screen.getAllByTestId('timeline-event');
    expect(collected.querySelector('[data-testid="timeline-actor"]')!.textContent).toBe('张桂英');
    expect(collected.querySelector('[data-testid="timeline-device"]')!.textContent).toBe('设备尾号 6e59');
    // Nobody's roster names the hall PC's identity: it is shown as it is, in grey.
    const hall = triaged.querySelector('[data-testid="timeline-actor"]') as HTMLElement;
    expect(hall.textContent).toBe('hall-pc');
    expect(hall.dataset.unlisted).toBe('true');
    noMachineIds(screen.getByTestId('screen-request').textContent ?? '');
  });

  it('a merge target this device does not hold is named by its short number', async () => {
    stubTransport({
      request: (a) => {
        if (a.id === TARGET) throw { code: 'not_found', message: 'no such request' };
        return detail();
      },
      photo: () => ({ mime: 'image/jpeg', data_base64: '/9j/' }),
    });
    render(RequestDetail, { props: { id: UUID } });
    const absent = await waitFor(() => {
      const el = screen.getByTestId('timeline-request');
      expect(el.dataset.absent).toBe('true');
      return el;
    });
    expect(absent.textContent).toBe('编号 7c9e6679 的诉求（本机没有）');
    noMachineIds(screen.getByTestId('screen-request').textContent ?? '');
  });

  it('a meeting lists the requests it discussed by their descriptions', async () => {
    stubTransport({
      meeting: () => ({
        id: 'm-1',
        grid: 'g1',
        kind: 'deliberation',
        held_at: T0,
        place: '村委会',
        topic: '路灯',
        participants: [{ name: '陈指导员', role: 'instructor' }],
        requests: [TARGET],
        decisions: [{ request: TARGET, decision: '利用闲置太阳能路灯' }],
        created_by: 'w1',
        created_at: T0,
      }),
      request: () => detail({ id: TARGET, description: '马社村3组门口路灯不亮一周了' }),
    });
    render(MeetingView, { props: { id: 'm-1' } });
    await waitFor(() => expect(screen.getAllByText('马社村3组门口路灯不亮一周了')).toHaveLength(2));
    const text = screen.getByTestId('screen-meeting').textContent ?? '';
    expect(text).toContain('张桂英');
    expect(text).toContain('马厩村第1网格');
    noMachineIds(text);
  });
});

describe('GPS', () => {
  it('reads as coordinates with links to a map', () => {
    const g = { lat: 30.701234, lon: 121.012346, accuracy_m: 15 };
    expect(coordsText(g)).toBe('30.70123, 121.01235');
    expect(geoUri(g)).toBe('geo:30.701234,121.012346?q=30.701234,121.012346');
    const web = new URL(webMapUrl(g, '三组'));
    expect(web.origin + web.pathname).toBe('https://uri.amap.com/marker');
    expect(web.searchParams.get('position')).toBe('121.012346,30.701234'); // longitude first
    expect(web.searchParams.get('coordinate')).toBe('wgs84');
    expect(web.searchParams.get('name')).toBe('三组');
    expect(isGps(g)).toBe(true);
    expect(isGps(null)).toBe(false);
    expect(isGps({ lat: 91, lon: 0 })).toBe(false);
  });

  it('is shown on a request that has it', async () => {
    stubTransport({
      request: () => detail({ gps: { lat: 30.70123, lon: 121.01234, accuracy_m: 15 }, history: [] }),
      photo: () => ({ mime: 'image/jpeg', data_base64: '/9j/' }),
    });
    render(RequestDetail, { props: { id: UUID } });
    expect((await screen.findByTestId('detail-gps-coords')).textContent).toBe('30.70123, 121.01234');
    expect(screen.getByTestId('detail-gps').textContent).toContain('±15 米');
    expect(screen.getByTestId('detail-gps-map').getAttribute('href')).toBe('geo:30.70123,121.01234?q=30.70123,121.01234');
    expect(screen.getByTestId('detail-gps-web').getAttribute('href')).toContain('https://uri.amap.com/marker?position=121.01234%2C30.70123');
  });

  describe('taken by itself', () => {
    let getCurrentPosition: ReturnType<typeof vi.fn>;
    let state: PermissionState;
    beforeEach(() => {
      getCurrentPosition = vi.fn((ok: PositionCallback) => ok({ coords: { latitude: 30.70123, longitude: 121.01234, accuracy: 12 } } as GeolocationPosition));
      Object.defineProperty(navigator, 'geolocation', { configurable: true, value: { getCurrentPosition } });
      Object.defineProperty(navigator, 'permissions', { configurable: true, value: { query: vi.fn(async () => ({ state })) } });
    });
    afterEach(() => {
      delete (navigator as unknown as Record<string, unknown>).geolocation;
      delete (navigator as unknown as Record<string, unknown>).permissions;
    });

    it('when the permission is already granted', async () => {
      state = 'granted';
      render(GpsButton, { props: { testid: 'g', auto: true } });
      const value = await screen.findByTestId('g-value');
      expect(value.textContent).toContain('30.70123, 121.01234');
      expect(value.textContent).toContain('已自动记录位置');
      expect(getCurrentPosition).toHaveBeenCalledTimes(1);
    });

    it('never when the browser would have to ask', async () => {
      state = 'prompt';
      render(GpsButton, { props: { testid: 'g', auto: true } });
      await new Promise((r) => setTimeout(r, 20));
      expect(getCurrentPosition).not.toHaveBeenCalled();
      expect(screen.queryByTestId('g-value')).toBeNull();
      // A tap still asks.
      await fireEvent.click(screen.getByTestId('g'));
      expect(getCurrentPosition).toHaveBeenCalledTimes(1);
    });

    it('not before the form is ready (auto off)', async () => {
      state = 'granted';
      render(GpsButton, { props: { testid: 'g', auto: false } });
      await new Promise((r) => setTimeout(r, 20));
      expect(getCurrentPosition).not.toHaveBeenCalled();
    });
  });
});

describe('pick, don’t type', () => {
  // Lists carry a resident's number masked (issue 14).
  const household = { id: 'h-3', kind: 'household', name: '王雪芬', address: '三组 3 号', micro_grid: null, tags: [], phone: '130****1231', last_visited_at: null, stale: false };

  it('a request raised at a household has its head as reporter, still editable; her number is left to the core', async () => {
    const stub = stubTransport({
      draft_get: () => ({ value: null, updated_at: null }),
      draft_put: () => ({}),
      draft_delete: () => ({}),
      places: () => [household],
      grids: () => GRIDS,
      raise_request: () => ({ id: 'r-1' }),
      status: () => ({}),
    });
    render(RequestForm, { props: { query: { grid: 'g1', address: '三组 3 号', place: 'h-3' } } });
    await screen.findByTestId('request-reporter-prefilled');
    const name = screen.getByTestId('request-reporter-name') as HTMLInputElement;
    expect(name.value).toBe('王雪芬');
    // The masked number is never put in the field: the hint says the household's is used.
    expect((screen.getByTestId('request-reporter-phone') as HTMLInputElement).value).toBe('');
    expect(screen.getByTestId('request-reporter-phone-hint').textContent).toBe('留空则使用户主电话 130****1231');
    await fireEvent.input(name, { target: { value: '王雪芬的儿子' } });
    expect(screen.queryByTestId('request-reporter-prefilled')).toBeNull();
    expect(screen.queryByTestId('request-reporter-phone-hint')).toBeNull();
    await fireEvent.change(screen.getByTestId('request-category'), { target: { value: 'streetlight' } });
    await fireEvent.input(screen.getByTestId('request-description'), { target: { value: '路灯不亮' } });
    await fireEvent.click(screen.getByTestId('request-submit'));
    await waitFor(() => expect(stub.of('raise_request')).toHaveLength(1));
    expect(stub.of('raise_request')[0].reporter).toEqual({ kind: 'resident', name: '王雪芬的儿子', household: 'h-3' });
  });

  it('an enterprise or a place without a household leaves the reporter empty', async () => {
    stubTransport({
      draft_get: () => ({ value: null, updated_at: null }),
      draft_put: () => ({}),
      places: () => [{ ...household, id: 'e-1', kind: 'enterprise', name: '某某厂' }],
      grids: () => GRIDS,
    });
    render(RequestForm, { props: { query: { grid: 'g1', place: 'e-1' } } });
    await new Promise((r) => setTimeout(r, 30));
    expect((screen.getByTestId('request-reporter-name') as HTMLInputElement).value).toBe('');
    expect(screen.queryByTestId('request-reporter-prefilled')).toBeNull();
  });

  it('companions are offered from the roster; a colleague picked there is ticked as a walker', async () => {
    const saved = app.status;
    app.status = { ...(saved ?? {}), walker: { id: 'w1', name: '张桂英' } } as typeof app.status;
    const stub = stubTransport({
      places: () => [household],
      draft_get: () => ({ value: null, updated_at: null }),
      draft_put: () => ({}),
      draft_delete: () => ({}),
      record_visit: () => ({ id: 'v-1' }),
    });
    try {
      render(VisitForm, { props: { grid: 'g1', placeId: 'h-3' } });
      await screen.findByText('王雪芬');
      const offered = [...document.querySelectorAll('[data-testid="visit-companions-suggestions"] option')].map((o) => (o as HTMLOptionElement).value);
      expect(offered).toEqual(['孙伟', '钱阿三']); // everyone but me
      const input = screen.getByTestId('visit-companions-input');
      await fireEvent.input(input, { target: { value: '孙伟' } });
      await fireEvent.keyDown(input, { key: 'Enter' });
      expect(screen.getByTestId('visit-walker').getAttribute('aria-pressed')).toBe('true');
      expect(screen.queryByTestId('visit-companions-list')).toBeNull();
      // Someone not of this grid, or not on the roster at all, is a companion by name.
      await fireEvent.input(input, { target: { value: '钱阿三、村书记 王建国' } });
      await fireEvent.keyDown(input, { key: 'Enter' });
      expect(screen.getByTestId('visit-companions-list').textContent).toContain('钱阿三');
      await fireEvent.click(screen.getByTestId('visit-submit'));
      await waitFor(() => expect(stub.of('record_visit')).toHaveLength(1));
      expect(stub.of('record_visit')[0]).toMatchObject({ other_walkers: ['w2'], companions: ['钱阿三', '村书记 王建国'] });
    } finally {
      app.status = saved;
    }
  });

  it('the hall merges into a suggestion or a request found by its words, never a typed number', async () => {
    const saved = app.status;
    app.status = { ...(saved ?? {}), role: 'hall' } as typeof app.status;
    const other = row('r-other', { description: '想咨询城乡居民医保缴费' });
    const stub = stubTransport({
      request: (a) => (a.id === 'r-other' ? detail({ ...other, history: [] }) : detail({ id: 'r-dup', status: 'new', allowed: ['triaged'], history: [] })),
      duplicates: () => [{ ...row('r-orig', { description: '马社村3组门口路灯不亮一周了' }), score: 0.73, place_similarity: 0.8, text_similarity: 0.66 }],
      requests: () => ({ items: [row('r-dup'), row('r-orig'), other], total: 3 }),
      act: () => detail({ id: 'r-dup', status: 'merged', history: [] }),
      photo: () => ({ mime: 'image/jpeg', data_base64: '/9j/' }),
    });
    try {
      render(HallRequest, { props: { id: 'r-dup' } });
      await fireEvent.click(await screen.findByTestId('triage-merge_into'));
      // The only box to type in is the search by words: no field takes a request's number.
      const boxes = [...screen.getByTestId('triage-panel').querySelectorAll('input:not([type="radio"]), textarea')].map((e) => e.getAttribute('data-testid'));
      expect(boxes).toEqual(['merge-search']);
      await screen.findByTestId('duplicate-item');
      await fireEvent.input(screen.getByTestId('merge-search'), { target: { value: '医保' } });
      await fireEvent.click(screen.getByTestId('merge-search-submit'));
      // Itself and the suggestion already listed are not offered again.
      const results = await screen.findAllByTestId('merge-result');
      expect(results.map((r) => r.dataset.requestId)).toEqual(['r-other']);
      expect(stub.of('requests')).toEqual([{ grid: 'g1', text: '医保', limit: 20 }]);
      await fireEvent.click(results[0].querySelector('input')!);
      await waitFor(() => expect(screen.getByTestId('merge-chosen').textContent).toContain('想咨询城乡居民医保缴费'));
      await fireEvent.click(screen.getByTestId('triage-submit'));
      await waitFor(() => expect(stub.of('act')).toHaveLength(1));
      expect(stub.of('act')[0]).toEqual({ id: 'r-dup', action: { type: 'triaged', decision: { kind: 'merge_into', target: 'r-other' } } });
    } finally {
      app.status = saved;
    }
  });

  it('the hall picks the assignee among the grid’s walkers, or types one', async () => {
    const stub = stubTransport({
      request: () => detail({ id: 'r-1', status: 'accepted', allowed: ['assigned'], history: [] }),
      act: () => detail({ id: 'r-1', status: 'assigned', history: [] }),
      photo: () => ({ mime: 'image/jpeg', data_base64: '/9j/' }),
    });
    render(HallRequest, { props: { id: 'r-1' } });
    const picks = await screen.findAllByTestId('assign-person-pick');
    expect(picks.map((p) => p.textContent)).toEqual(['张桂英', '孙伟']); // this grid's, not 钱阿三
    const options = [...document.querySelectorAll('#hall-people option')].map((o) => (o as HTMLOptionElement).value);
    expect(options).toEqual(['张桂英', '孙伟', '钱阿三']); // the grid's first, then everyone
    await fireEvent.click(picks[1]);
    expect((screen.getByTestId('assign-person') as HTMLInputElement).value).toBe('孙伟');
    expect(picks[1].getAttribute('aria-pressed')).toBe('true');
    await fireEvent.change(screen.getByTestId('assign-department'), { target: { value: 'dept-urban' } });
    await fireEvent.click(screen.getByTestId('assign-submit'));
    await waitFor(() => expect(stub.of('act')).toHaveLength(1));
    expect(stub.of('act')[0]).toMatchObject({ action: { type: 'assigned', department: 'dept-urban', person: '孙伟' } });
  });
});
