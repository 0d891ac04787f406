import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { beforeEach, describe, expect, it } from 'vitest';
import { refs } from '../lib/reference.svelte';
import RequestForm from '../screens/RequestForm.svelte';
import { stubTransport } from './stub';

const REFERENCE = {
  categories: [
    { code: 'streetlight', zh: '路灯', en: 'Streetlight' },
    { code: 'parking', zh: '违停', en: 'Parking' },
  ],
  departments: [],
  walkers: [],
};
const GRIDS = [{ id: 'g1', name: '一号网格', village: '马厍村', enterprise_grid: false, households: 10, enterprises: 0, stale_places: 0 }];

function photoFile(name: string, bytes: number[]): File {
  return new File([new Uint8Array(bytes)], name, { type: 'image/jpeg' });
}

function setFiles(input: HTMLInputElement, files: File[]) {
  Object.defineProperty(input, 'files', { configurable: true, value: files });
}

describe('request form', () => {
  beforeEach(() => {
    refs.reference = REFERENCE;
    refs.grids = GRIDS;
    location.hash = '#/request/new';
  });

  it('refuses a missing description, then saves the request with its photos in one call and moves on', async () => {
    const stub = stubTransport({
      draft_get: () => ({ value: null, updated_at: null }),
      draft_put: () => ({}),
      draft_delete: () => ({}),
      grids: () => GRIDS,
      raise_request: () => ({ id: 'r-42', waiting_photos: [] }),
      status: () => ({}),
    });
    render(RequestForm, { props: { query: { grid: 'g1', address: '马厍村三组 12 号', visit: 'v-7', place: 'h-3' } } });
    await waitFor(() => expect(stub.of('draft_get')).toEqual([{ key: 'request:new' }]));

    const address = screen.getByTestId('request-address') as HTMLInputElement;
    expect(address.value).toBe('马厍村三组 12 号');
    await fireEvent.change(screen.getByTestId('request-category'), { target: { value: 'streetlight' } });

    // No description: the form says so and nothing is raised.
    await fireEvent.click(screen.getByTestId('request-submit'));
    expect(await screen.findByTestId('request-description-error')).toBeTruthy();
    expect(stub.of('raise_request')).toEqual([]);

    await fireEvent.input(screen.getByTestId('request-description'), { target: { value: '路灯不亮已有一周' } });
    await fireEvent.change(screen.getByTestId('request-urgency'), { target: { value: 'high' } });
    await fireEvent.input(screen.getByTestId('request-reporter-name'), { target: { value: '张桂英' } });
    const input = screen.getByTestId('request-photo-input') as HTMLInputElement;
    expect(input.accept).toBe('image/*');
    expect(input.multiple).toBe(true);
    expect(input.getAttribute('capture')).toBe('environment');
    setFiles(input, [photoFile('a.jpg', [1, 2, 3]), photoFile('b.jpg', [4, 5])]);
    await fireEvent.change(input);
    await waitFor(() => expect(screen.getAllByTestId('request-photo-remove')).toHaveLength(2));

    await fireEvent.click(screen.getByTestId('request-submit'));
    await waitFor(() => expect(stub.of('raise_request')).toHaveLength(1));

    expect(stub.of('raise_request')).toEqual([
      {
        grid: 'g1',
        category: 'streetlight',
        description: '路灯不亮已有一周',
        urgency: 'high',
        address: '马厍村三组 12 号',
        reporter: { kind: 'resident', name: '张桂英' },
        visit: 'v-7',
        photos: [
          { file_name: 'a.jpg', data_base64: btoa(String.fromCharCode(1, 2, 3)) },
          { file_name: 'b.jpg', data_base64: btoa(String.fromCharCode(4, 5)) },
        ],
      },
    ]);
    // One call saves it all: the photos are processed in the background, not photo by photo here.
    expect(stub.of('add_photo')).toEqual([]);
    await waitFor(() => expect(stub.of('draft_delete')).toEqual([{ key: 'request:new' }]));
    await waitFor(() => expect(location.hash).toBe('#/request/r-42'));
  });

  it('restores its draft and saves changes, debounced, under request:new', async () => {
    const stub = stubTransport({
      draft_get: () => ({
        value: { grid: 'g1', category: 'parking', description: '货车堵路', urgency: 'urgent', address: '村口', anonymous: true, photos: [] },
        updated_at: 1,
      }),
      draft_put: () => ({}),
      grids: () => GRIDS,
    });
    render(RequestForm, { props: { query: {} } });
    await waitFor(() => expect((screen.getByTestId('request-description') as HTMLTextAreaElement).value).toBe('货车堵路'));
    expect((screen.getByTestId('request-category') as HTMLSelectElement).value).toBe('parking');
    expect((screen.getByTestId('request-urgency') as HTMLSelectElement).value).toBe('urgent');
    expect((screen.getByTestId('request-anonymous') as HTMLInputElement).checked).toBe(true);
    expect(screen.getByTestId('request-draft-restored')).toBeTruthy();

    await fireEvent.input(screen.getByTestId('request-description'), { target: { value: '货车堵路，消防车进不来' } });
    await waitFor(() => expect(stub.of('draft_put').length).toBeGreaterThan(0), { timeout: 2000 });
    const last = stub.of('draft_put').at(-1)!;
    expect(last.key).toBe('request:new');
    expect((last.value as Record<string, unknown>).description).toBe('货车堵路，消防车进不来');
  });

  it('shows the core’s error in the user’s language when raising fails', async () => {
    stubTransport({
      draft_get: () => ({ value: null, updated_at: null }),
      draft_put: () => ({}),
      grids: () => GRIDS,
      raise_request: () => {
        throw { code: 'unknown_grid', message: "unknown grid 'g1'" };
      },
    });
    render(RequestForm, { props: { query: { grid: 'g1' } } });
    await fireEvent.change(await screen.findByTestId('request-category'), { target: { value: 'parking' } });
    await fireEvent.input(screen.getByTestId('request-description'), { target: { value: '违停' } });
    await fireEvent.input(screen.getByTestId('request-address'), { target: { value: '村口' } });
    await fireEvent.click(screen.getByTestId('request-submit'));
    expect((await screen.findByTestId('request-error')).textContent).toContain('找不到这个网格');
  });
});

// Lists carry a resident's number masked (issue 14): it is never put in the phone field nor sent.
const HOUSEHOLD = { id: 'h-3', kind: 'household', name: '王雪芬', address: '三组 3 号', micro_grid: null, tags: [], phone: '130****1231', last_visited_at: null, stale: false };

describe('the request form never sends a masked number', () => {
  beforeEach(() => {
    refs.reference = REFERENCE;
    refs.grids = GRIDS;
    location.hash = '#/request/new';
  });

  const handlers = (draft: unknown = null) => ({
    draft_get: () => ({ value: draft, updated_at: draft ? 1 : null }),
    draft_put: () => ({}),
    draft_delete: () => ({}),
    places: () => [HOUSEHOLD],
    grids: () => GRIDS,
    raise_request: () => ({ id: 'r-9', waiting_photos: [] }),
    status: () => ({}),
  });

  it('leaves the phone empty at a household, says the household’s number is used, and sends none', async () => {
    const stub = stubTransport(handlers());
    render(RequestForm, { props: { query: { grid: 'g1', address: '三组 3 号', place: 'h-3' } } });
    const hint = await screen.findByTestId('request-reporter-phone-hint');
    expect(hint.textContent).toBe('留空则使用户主电话 130****1231');
    expect((screen.getByTestId('request-reporter-name') as HTMLInputElement).value).toBe('王雪芬');
    const phone = screen.getByTestId('request-reporter-phone') as HTMLInputElement;
    expect(phone.value).toBe('');

    // A number typed hides the hint; the masked one typed back is no number: the hint returns.
    await fireEvent.input(phone, { target: { value: '13900001111' } });
    expect(screen.queryByTestId('request-reporter-phone-hint')).toBeNull();
    await fireEvent.input(phone, { target: { value: '130****1231' } });
    expect(screen.getByTestId('request-reporter-phone-hint')).toBeTruthy();

    await fireEvent.change(screen.getByTestId('request-category'), { target: { value: 'streetlight' } });
    await fireEvent.input(screen.getByTestId('request-description'), { target: { value: '路灯不亮' } });
    await fireEvent.click(screen.getByTestId('request-submit'));
    await waitFor(() => expect(stub.of('raise_request')).toHaveLength(1));
    expect(stub.of('raise_request')[0].reporter).toEqual({ kind: 'resident', name: '王雪芬', household: 'h-3' });
    expect(JSON.stringify(stub.calls.filter((c) => c.cmd !== 'draft_put'))).not.toContain('*');
  });

  it('drops a masked number kept in a draft', async () => {
    const draft = {
      grid: 'g1',
      category: 'streetlight',
      description: '路灯不亮',
      urgency: 'normal',
      address: '三组 3 号',
      anonymous: false,
      reporter_name: '王雪芬',
      reporter_phone: '130****1231',
      place: 'h-3',
      place_kind: 'household',
      visit: '',
      gps: null,
      photos: [],
    };
    const stub = stubTransport(handlers(draft));
    render(RequestForm, { props: { query: { grid: 'g1', place: 'h-3' } } });
    await screen.findByTestId('request-draft-restored');
    expect((screen.getByTestId('request-reporter-phone') as HTMLInputElement).value).toBe('');
    expect((await screen.findByTestId('request-reporter-phone-hint')).textContent).toContain('130****1231');
    await fireEvent.click(screen.getByTestId('request-submit'));
    await waitFor(() => expect(stub.of('raise_request')).toHaveLength(1));
    expect(stub.of('raise_request')[0].reporter).toEqual({ kind: 'resident', name: '王雪芬', household: 'h-3' });
  });
});
