import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { beforeEach, describe, expect, it } from 'vitest';
import App from '../App.svelte';
import type { AppStatus, LockStatus } from '../lib/api';
import { app, setStatus } from '../lib/status.svelte';
import Enroll from '../screens/Enroll.svelte';
import Lock from '../screens/Lock.svelte';
import SetPin from '../screens/SetPin.svelte';
import Sync from '../screens/Sync.svelte';
import { baseStatus, stubTransport } from './stub';

/** A walker's phone: locked by her PIN unless `lock` says otherwise. */
function status(lock: Partial<LockStatus> = {}, more: Partial<AppStatus> = {}): AppStatus {
  return baseStatus({
    lock: { locked: true, pin_needed: false, lock: 'pin', wait_seconds: null, wiped_at: null, ...lock },
    ...more,
  });
}

/** The same phone unlocked, with its store open. */
function open(lock: Partial<LockStatus> = {}, more: Partial<AppStatus> = {}): AppStatus {
  return status(
    { locked: false, ...lock },
    { device_name: '张桂英的手机', walker: { id: 'w-1', name: '张桂英' }, role: 'walker', relay_url: 'http://hall', online: true, ...more },
  );
}

const REFERENCE = { categories: [], departments: [], walkers: [] };

function input(testId: string, value: string) {
  return fireEvent.input(screen.getByTestId(testId), { target: { value } });
}

beforeEach(() => {
  app.status = null;
  app.error = null;
  app.loaded = false;
  location.hash = '';
});

describe('the lock screen', () => {
  it('says a wrong PIN in Chinese with the tries left, then counts a wait down with the button off', async () => {
    let now = status();
    const stub = stubTransport({
      status: () => now,
      unlock: (a) => {
        if (a.pin === '1111') throw { code: 'wrong_pin', message: 'wrong PIN (3 more tries before attempts are slowed down)' };
        now = status({ wait_seconds: 30 });
        throw { code: 'pin_attempts_slowed', message: 'too many wrong PINs: try again in 30 seconds' };
      },
    });
    setStatus(now);
    render(Lock);
    expect(screen.getByTestId('lock-screen').textContent).toContain('忘记 PIN？可以保留记录并重新登记，登记码向服务中心要。');
    expect(screen.getByTestId('lock-pin').getAttribute('inputmode')).toBe('numeric');

    // Too short: said here, not counted as a wrong PIN by the core.
    await input('lock-pin', '12');
    await fireEvent.click(screen.getByTestId('lock-submit'));
    expect((await screen.findByTestId('lock-error')).textContent).toContain('4 到 8 位数字');
    expect(stub.of('unlock')).toEqual([]);

    await input('lock-pin', '1111');
    await fireEvent.click(screen.getByTestId('lock-submit'));
    await waitFor(() => expect(screen.getByTestId('lock-error').textContent).toBe('PIN 不对，请重新输入。还可以再试 3 次。'));
    expect(screen.getByTestId('lock-error').textContent).not.toMatch(/wrong|tries/i);
    expect((screen.getByTestId('lock-pin') as HTMLInputElement).value).toBe('');
    expect(stub.of('unlock')).toEqual([{ pin: '1111' }]);

    await input('lock-pin', '9999');
    await fireEvent.click(screen.getByTestId('lock-submit'));
    await waitFor(() => expect(screen.getByTestId('lock-wait').textContent).toContain('请 30 秒后再试'));
    expect(screen.getByTestId('lock-error').textContent).toContain('PIN 输错次数太多');
    const submit = screen.getByTestId('lock-submit') as HTMLButtonElement;
    expect(submit.disabled).toBe(true);
    // Enter does nothing either while the wait runs.
    await input('lock-pin', '2580');
    await fireEvent.submit(submit.form!);
    expect(stub.of('unlock')).toHaveLength(2);
  });

  it('sets the records aside and returns to enrolment only after she says yes to it', async () => {
    const stub = stubTransport({
      status: () => status(),
      set_store_aside: () => status({ locked: false, lock: 'none' }, { enrolled: false }),
    });
    setStatus(status());
    render(Lock);
    expect(screen.queryByTestId('lock-forgot-panel')).toBeNull();
    await fireEvent.click(screen.getByTestId('lock-forgot-open'));
    expect(screen.getByTestId('lock-forgot-panel').textContent).toContain('加密保留');
    expect(stub.of('set_store_aside')).toEqual([]);
    await fireEvent.click(screen.getByTestId('lock-forgot-confirm'));
    await waitFor(() => expect(stub.of('set_store_aside')).toEqual([{ confirm: true }]));
    await waitFor(() => expect(app.status?.enrolled).toBe(false));
  });

  it('waits as the status says when it opens, asks again when the wait is over, and unlocks', async () => {
    let now = status({ wait_seconds: 1 });
    const stub = stubTransport({
      status: () => now,
      unlock: (a) => {
        if (a.pin !== '2580') throw { code: 'wrong_pin', message: 'wrong PIN (4 more tries before attempts are slowed down)' };
        return open();
      },
    });
    setStatus(now);
    render(Lock);
    expect(screen.getByTestId('lock-wait').textContent).toBe('请 1 秒后再试');
    expect((screen.getByTestId('lock-submit') as HTMLButtonElement).disabled).toBe(true);

    now = status();
    await waitFor(() => expect((screen.getByTestId('lock-submit') as HTMLButtonElement).disabled).toBe(false), { timeout: 3000 });
    expect(screen.queryByTestId('lock-wait')).toBeNull();
    expect(stub.of('status').length).toBeGreaterThan(0);

    // A wrong PIN after the wait says how many tries are left.
    await input('lock-pin', '1111');
    await fireEvent.click(screen.getByTestId('lock-submit'));
    await waitFor(() => expect(screen.getByTestId('lock-error').textContent).toContain('还可以再试 4 次'));

    await input('lock-pin', '2580');
    await fireEvent.click(screen.getByTestId('lock-submit'));
    await waitFor(() => expect(app.status?.lock?.locked).toBe(false));
  });

  it('speaks English when asked', async () => {
    const { setLang } = await import('../lib/i18n.svelte');
    setLang('en');
    stubTransport({
      status: () => status(),
      unlock: () => {
        throw { code: 'wrong_pin', message: 'wrong PIN (0 more tries before attempts are slowed down)' };
      },
    });
    setStatus(status());
    render(Lock);
    expect(screen.getByRole('heading').textContent).toContain('Enter your PIN to unlock');
    await input('lock-pin', '1111');
    await fireEvent.click(screen.getByTestId('lock-submit'));
    await waitFor(() => expect(screen.getByTestId('lock-error').textContent).toContain('you must wait'));
  });
});

describe('choosing a PIN', () => {
  it('refuses two different PINs without asking the core, then sets the PIN', async () => {
    const stub = stubTransport({
      set_device_pin: () => open({ lock: 'pin', pin_needed: false }),
    });
    setStatus(open({ lock: 'keystore', pin_needed: true }));
    render(SetPin);
    expect(screen.getByTestId('setpin-screen').textContent).toContain('这台手机上有居民的信息');

    await input('setpin-pin', '2580');
    await input('setpin-again', '2581');
    await fireEvent.click(screen.getByTestId('setpin-submit'));
    expect((await screen.findByTestId('setpin-error')).textContent).toContain('两次输入的 PIN 不一样');
    expect((screen.getByTestId('setpin-again') as HTMLInputElement).value).toBe('');
    expect(stub.of('set_device_pin')).toEqual([]);

    await input('setpin-pin', '25');
    await input('setpin-again', '25');
    await fireEvent.click(screen.getByTestId('setpin-submit'));
    expect(screen.getByTestId('setpin-error').textContent).toContain('4 到 8 位数字');
    expect(stub.of('set_device_pin')).toEqual([]);

    await input('setpin-pin', '2580');
    await input('setpin-again', '2580');
    await fireEvent.click(screen.getByTestId('setpin-submit'));
    await waitFor(() => expect(app.status?.lock?.pin_needed).toBe(false));
    expect(stub.of('set_device_pin')).toEqual([{ pin: '2580' }]);
  });
});

describe('the phone lock on the sync screen', () => {
  it('locks now, and changes the PIN with the current one', async () => {
    const stub = stubTransport({
      lock: () => status(),
      set_device_pin: (a) => {
        if (a.current_pin !== '2580') throw { code: 'wrong_pin', message: 'wrong PIN (4 more tries before attempts are slowed down)' };
        return open();
      },
    });
    setStatus(open());
    render(Sync);

    await input('changepin-current', '1111');
    await input('changepin-new', '1357');
    await input('changepin-again', '1358');
    await fireEvent.click(screen.getByTestId('changepin-submit'));
    expect((await screen.findByTestId('changepin-error')).textContent).toContain('两次输入的 PIN 不一样');
    expect(stub.of('set_device_pin')).toEqual([]);

    await input('changepin-again', '1357');
    await fireEvent.click(screen.getByTestId('changepin-submit'));
    await waitFor(() => expect(screen.getByTestId('changepin-error').textContent).toContain('PIN 不对'));
    expect(stub.of('set_device_pin')).toEqual([{ pin: '1357', current_pin: '1111' }]);

    await input('changepin-current', '2580');
    await fireEvent.click(screen.getByTestId('changepin-submit'));
    await waitFor(() => expect(stub.of('set_device_pin')).toHaveLength(2));
    expect(stub.of('set_device_pin')[1]).toEqual({ pin: '1357', current_pin: '2580' });
    await waitFor(() => expect(screen.queryByTestId('changepin-error')).toBeNull());
    expect((screen.getByTestId('changepin-new') as HTMLInputElement).value).toBe('');

    await fireEvent.click(screen.getByTestId('lock-now'));
    await waitFor(() => expect(app.status?.lock?.locked).toBe(true));
    expect(stub.of('lock')).toEqual([{}]);
  });

  it('offers no lock on a hall PC, which opens with its keystore', () => {
    stubTransport({});
    setStatus(open({ lock: 'keystore' }, { role: 'hall' }));
    render(Sync);
    expect(screen.queryByTestId('lock-now')).toBeNull();
    expect(screen.queryByTestId('changepin-submit')).toBeNull();
  });
});

describe('the app and its lock', () => {
  it('shows the PIN pad before everything else, and asks nothing else of the core while locked', async () => {
    // Locked from the start: enrolled, a hall-like sign-in flag and a wipe notice all wait.
    let now = status({}, { sign_in_required: true });
    const stub = stubTransport({
      status: () => now,
      unlock: () => (now = open()),
      reference: () => REFERENCE,
      grids: () => [],
    });
    render(App);
    await screen.findByTestId('lock-screen');
    expect(screen.queryByTestId('app-shell')).toBeNull();
    expect(screen.queryByTestId('screen-enroll')).toBeNull();
    expect(screen.queryByTestId('screen-sign-in')).toBeNull();
    expect(screen.queryByTestId('setpin-screen')).toBeNull();
    expect(stub.calls.map((c) => c.cmd).filter((c) => c !== 'status')).toEqual([]);

    await input('lock-pin', '2580');
    await fireEvent.click(screen.getByTestId('lock-submit'));
    await screen.findByTestId('app-shell');
    expect(screen.queryByTestId('lock-screen')).toBeNull();
    // Unlocked: the reference lists are read now.
    await waitFor(() => expect(stub.of('reference').length).toBeGreaterThan(0));
  });

  it('asks a walker without a PIN to choose one before the shell', async () => {
    stubTransport({ status: () => open({ lock: 'keystore', pin_needed: true }), reference: () => REFERENCE, grids: () => [] });
    render(App);
    await screen.findByTestId('setpin-screen');
    expect(screen.queryByTestId('app-shell')).toBeNull();
  });

  it('shows the PIN pad as soon as a screen is told the app is locked', async () => {
    let now = open();
    const stub = stubTransport({
      status: () => now,
      reference: () => REFERENCE,
      grids: () => {
        // The phone locked itself (5 idle minutes) between two polls.
        now = status();
        throw { code: 'app_locked', message: "the app is locked: unlock it with this device's PIN" };
      },
    });
    render(App);
    await screen.findByTestId('lock-screen', {}, { timeout: 2000 });
    // Well before the next 5-second poll: the failed call asked for the status itself.
    expect(stub.of('status').length).toBeLessThanOrEqual(3);
  });

  it('tells the phone someone is there when she taps, once per 30 seconds, only while unlocked with a PIN', async () => {
    const stub = stubTransport({ status: () => open(), still_here: () => open(), reference: () => REFERENCE, grids: () => [] });
    render(App);
    await screen.findByTestId('app-shell');
    await fireEvent.pointerDown(window);
    await fireEvent.keyDown(window, { key: 'a' });
    expect(stub.of('still_here')).toEqual([{}]);
  });

  it('says on the enrol screen that the hall revoked the phone and its records were erased', async () => {
    stubTransport({});
    setStatus(
      status(
        { locked: false, lock: 'none', wiped_at: Date.UTC(2026, 10, 22, 6, 5) },
        { enrolled: false, last_error: { code: 'device_revoked', message: 'revoked' } },
      ),
    );
    render(Enroll);
    const notice = screen.getByTestId('wiped-notice');
    expect(notice.textContent).toContain('服务中心已停用这台设备，本机上的记录已全部清除（2026-11-22 14:05）');
    expect(notice.textContent).toContain('请重新登记');
  });
});
