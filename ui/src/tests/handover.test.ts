// A forgotten PIN, continued: the walker's phone says where the hand-over of her set-aside
// records stands, and an admin at the hall confirms, with her own PIN, that it is her.
import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { beforeEach, describe, expect, it } from 'vitest';
import type { AppStatus, Handover, HeldStore } from '../lib/api';
import { flash } from '../lib/flash.svelte';
import { setLang } from '../lib/i18n.svelte';
import { app, setStatus } from '../lib/status.svelte';
import Admin from '../screens/hall/Admin.svelte';
import Handovers from '../screens/hall/Handovers.svelte';
import Lock from '../screens/Lock.svelte';
import Sync from '../screens/Sync.svelte';
import { baseStatus, stubTransport } from './stub';

/** 2026-11-22 14:05 in Shanghai. */
const SET_ASIDE = Date.UTC(2026, 10, 22, 6, 5);
const ASKED = Date.UTC(2026, 10, 23, 1, 30); // 09:30 in Shanghai
const OLD_DEVICE = 'dev-a2fd1b1ccddd6e59';

function status(more: Partial<AppStatus> = {}): AppStatus {
  return baseStatus({
    device_name: '张桂英的手机',
    walker: { id: 'w-1', name: '张桂英' },
    role: 'walker',
    relay_url: 'http://hall',
    online: true,
    now: ASKED,
    lock: { locked: false, pin_needed: false, lock: 'pin', wait_seconds: null, wiped_at: null },
    ...more,
  });
}

function held(state: HeldStore['state'], documents = 0, photos = 0): HeldStore {
  return { set_aside_at: SET_ASIDE, state, taken_documents: documents, taken_photos: photos };
}

function handover(over: Partial<Handover> = {}): Handover {
  return {
    from_device: OLD_DEVICE,
    from_device_name: '张桂英的手机',
    to_device_name: '张桂英的新手机',
    walker: 'w-1',
    walker_name: '张桂英',
    state: 'pending',
    requested_at: ASKED,
    confirmed_by_name: null,
    confirmed_at: null,
    done_at: null,
    taken_documents: null,
    taken_photos: null,
    ...over,
  };
}

/** An earlier hand-over, done: another walker's, confirmed by the admin. */
const DONE = handover({
  from_device: 'dev-0011aabbccdd0011',
  from_device_name: '李明的手机',
  to_device_name: '李明的手机',
  walker: 'w-2',
  walker_name: '李明',
  state: 'done',
  requested_at: ASKED - 86_400_000,
  confirmed_by_name: '陈国平',
  confirmed_at: ASKED - 80_000_000,
  done_at: ASKED - 79_000_000,
  taken_documents: 3,
  taken_photos: 2,
});

function heldLines(): string[] {
  return screen.getAllByTestId('held-store').map((p) => p.textContent?.trim() ?? '');
}

beforeEach(() => {
  app.status = null;
  app.error = null;
  app.loaded = false;
  flash.text = null;
});

describe('the held records on the walker’s sync screen', () => {
  it('says where each hand-over stands, in Chinese', () => {
    stubTransport({});
    setStatus(
      status({
        held_stores: [
          held('asked'),
          held('pending'),
          held('released'),
          held('taken', 4, 1),
          held('done', 5, 2),
          held('done'),
          held('no_escrow'),
          { ...held('done', 1, 0), left_behind: 2 },
        ],
      }),
    );
    render(Sync);
    expect(screen.getAllByTestId('held-store').map((p) => p.dataset.state)).toEqual(['asked', 'pending', 'released', 'taken', 'done', 'done', 'no_escrow', 'done']);
    expect(heldLines()).toEqual([
      '旧记录（2026-11-22保留）中还没上传的内容：等服务中心确认是您本人后自动转入。',
      '旧记录（2026-11-22保留）中还没上传的内容：等服务中心确认是您本人后自动转入。',
      '正在转入旧记录…',
      '正在转入旧记录…',
      '已从旧记录转入 5 条记录、2 张照片。',
      '旧记录已处理完：里面没有还没上传的内容。',
      '旧记录（2026-11-22保留）已加密，只能用原来的 PIN 打开。',
      // Records of a grid she was moved off meanwhile did not come over, and she is told.
      '已从旧记录转入 1 条记录、0 张照片。另有 2 条记录属于您已不再负责的网格，没有转入。',
    ]);
  });

  it('says it in English too', () => {
    setLang('en');
    stubTransport({});
    setStatus(status({ held_stores: [held('pending'), held('done', 2, 3)] }));
    render(Sync);
    expect(heldLines()).toEqual([
      'Unsent work in your old records (kept 2026-11-22) comes over by itself once the service hall confirms it is you.',
      '2 records and 3 photos came over from your old records.',
    ]);
  });

  it('shows nothing when no records were set aside, or the core does not say', () => {
    stubTransport({});
    setStatus(status({ held_stores: [] }));
    const { unmount } = render(Sync);
    expect(screen.queryByTestId('held-store')).toBeNull();
    unmount();
    setStatus(status());
    render(Sync);
    expect(screen.queryByTestId('held-store')).toBeNull();
  });
});

describe('the forgotten-PIN panel', () => {
  it('says the unsent records come over once the hall has seen it is her', async () => {
    stubTransport({});
    setStatus(status({ lock: { locked: true, pin_needed: false, lock: 'pin', wait_seconds: null, wiped_at: null } }));
    render(Lock);
    await fireEvent.click(screen.getByTestId('lock-forgot-open'));
    const panel = screen.getByTestId('lock-forgot-panel').textContent ?? '';
    expect(panel).toContain('加密保留');
    expect(panel).toContain('请到服务中心当面确认是您本人，还没上传的记录就会自动转过来');
  });
});

describe('record hand-overs at the hall', () => {
  it('lists them by names, with when they were asked and how they stand, and no ids', async () => {
    const stub = stubTransport({ handovers: () => [handover(), DONE] });
    render(Handovers);
    const card = await screen.findByTestId('handovers');
    expect(card.querySelector('h3')?.textContent).toBe('记录交接');
    expect(card.textContent).toContain('请先当面核对本人身份');
    await waitFor(() => expect(screen.getAllByTestId('handover-row')).toHaveLength(2));
    const cells = (id: string) => screen.getAllByTestId(id).map((c) => c.textContent?.trim());
    expect(cells('handover-walker')).toEqual(['张桂英', '李明']);
    expect(cells('handover-devices')).toEqual(['张桂英的手机 → 张桂英的新手机', '李明的手机 → 李明的手机']);
    expect(cells('handover-asked')).toEqual(['2026-11-23 09:30', '2026-11-22 09:30']);
    expect(screen.getAllByTestId('handover-state')[0].textContent?.trim()).toBe('待确认');
    expect(screen.getAllByTestId('handover-state')[1].textContent).toContain('已转入 3 条记录、2 张照片');
    expect(screen.getByTestId('handover-confirmed-by').textContent).toBe('陈国平 于 2026-11-22 11:16 确认');
    // Only the pending one can be confirmed.
    expect(screen.getAllByTestId('handover-confirm-open')).toHaveLength(1);
    // Names, never ids: neither a device's nor a walker's.
    const text = screen.getByTestId('handover-list').textContent ?? '';
    expect(text).not.toMatch(/\bdev-[0-9a-f]+/);
    expect(text).not.toMatch(/\bw-[12]\b/);
    expect(stub.of('handovers')).toEqual([{}]);
  });

  it('says so when there is none', async () => {
    stubTransport({ handovers: () => [] });
    render(Handovers);
    expect((await screen.findByTestId('handover-empty')).textContent).toBe('没有记录交接。');
    expect(screen.queryByTestId('handover-list')).toBeNull();
  });

  it('confirms with the admin’s own PIN, then reads the list again', async () => {
    let now = [handover(), DONE];
    const stub = stubTransport({
      handovers: () => now,
      confirm_handover: () => {
        const released = handover({ state: 'released', confirmed_by_name: '陈国平', confirmed_at: ASKED + 60_000 });
        now = [released, DONE];
        return released;
      },
    });
    render(Handovers);
    await fireEvent.click(await screen.findByTestId('handover-confirm-open'));
    expect(screen.getByTestId('handover-confirm-form').textContent).toContain('请确认面前这位就是张桂英本人');
    const pin = screen.getByTestId('handover-pin') as HTMLInputElement;
    expect(pin.type).toBe('password');
    expect(pin.getAttribute('inputmode')).toBe('numeric');
    // No PIN typed: nothing to send.
    expect((screen.getByTestId('handover-confirm') as HTMLButtonElement).disabled).toBe(true);

    await fireEvent.input(pin, { target: { value: '2580' } });
    await fireEvent.click(screen.getByTestId('handover-confirm'));
    await waitFor(() => expect(stub.of('confirm_handover')).toEqual([{ from_device: OLD_DEVICE, my_pin: '2580' }]));
    await waitFor(() => expect(stub.of('handovers')).toHaveLength(2));
    await waitFor(() => expect(screen.queryByTestId('handover-confirm-form')).toBeNull());
    const row = screen.getAllByTestId('handover-row')[0];
    expect(row.dataset.state).toBe('released');
    expect(row.textContent).toContain('已确认，等待手机转入');
    expect(row.textContent).toContain('陈国平 于 2026-11-23 09:31 确认');
    expect(screen.queryByTestId('handover-confirm-open')).toBeNull();
    expect(flash.text?.()).toBe('已确认：张桂英的手机下次同步时会转入旧记录');
  });

  it('says a wrong PIN, and too many of them, in Chinese, and keeps no PIN on the screen', async () => {
    let tries = 0;
    stubTransport({
      handovers: () => [handover()],
      confirm_handover: () => {
        tries++;
        if (tries === 1) throw { code: 'wrong_pin', message: 'that name and PIN do not match' };
        throw { code: 'too_many_attempts', message: 'too many wrong PINs were typed on this device; wait 5 minute(s)' };
      },
    });
    render(Handovers);
    await fireEvent.click(await screen.findByTestId('handover-confirm-open'));
    await fireEvent.input(screen.getByTestId('handover-pin'), { target: { value: '1111' } });
    await fireEvent.click(screen.getByTestId('handover-confirm'));
    const error = await screen.findByTestId('handover-confirm-error');
    expect(error.textContent).toContain('PIN 不匹配，请重新输入');
    expect(error.textContent).not.toMatch(/wrong|match/i);
    expect((screen.getByTestId('handover-pin') as HTMLInputElement).value).toBe('');
    // Still open, to try again.
    expect(screen.getByTestId('handover-confirm-form')).toBeTruthy();

    await fireEvent.input(screen.getByTestId('handover-pin'), { target: { value: '2222' } });
    await fireEvent.click(screen.getByTestId('handover-confirm'));
    await waitFor(() => expect(screen.getByTestId('handover-confirm-error').textContent).toBe('PIN 输错次数太多，请 5 分钟后再试。'));
  });

  it('says in Chinese when the one signed in is no admin', async () => {
    stubTransport({
      handovers: () => [handover()],
      confirm_handover: () => {
        throw { code: 'handover_forbidden', message: 'hall-2 is no admin: only an admin confirms a hand-over' };
      },
    });
    render(Handovers);
    await fireEvent.click(await screen.findByTestId('handover-confirm-open'));
    await fireEvent.input(screen.getByTestId('handover-pin'), { target: { value: '2580' } });
    await fireEvent.click(screen.getByTestId('handover-confirm'));
    expect((await screen.findByTestId('handover-confirm-error')).textContent).toContain('只有系统管理员可以确认记录交接');
  });

  describe('on the admin page', () => {
    const LISTS = { villages: [], grids: [], departments: [], walkers: [] };
    const handlers = (role: string) => ({
      staff: () => [{ id: 'hall-1', name: '陈国平', role, has_pin: true }],
      admin_lists: () => LISTS,
      quick_phrases: () => [],
      access_log: () => [],
      handovers: () => [handover()],
    });
    const signedIn = () => setStatus(status({ role: 'hall', walker: null, signed_in: { id: 'hall-1', name: '陈国平' } }));

    it('is shown to an admin, in English when asked', async () => {
      setLang('en');
      const stub = stubTransport(handlers('admin'));
      signedIn();
      render(Admin);
      const card = await screen.findByTestId('handovers');
      expect(card.querySelector('h3')?.textContent).toBe('Record hand-overs');
      await waitFor(() => expect(screen.getByTestId('handover-state').textContent?.trim()).toBe('Waiting for confirmation'));
      expect(screen.getByTestId('handover-confirm-open').textContent).toBe('Confirm it is her');
      expect(stub.of('handovers')).toEqual([{}]);
    });

    it('is not shown to other hall staff, nor asked for', async () => {
      const stub = stubTransport(handlers('hall'));
      signedIn();
      render(Admin);
      await screen.findByTestId('admin-staff');
      expect(screen.queryByTestId('handovers')).toBeNull();
      expect(stub.of('handovers')).toEqual([]);
    });
  });
});
