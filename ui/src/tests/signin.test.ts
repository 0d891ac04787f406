import { fireEvent, render, screen, waitFor } from '@testing-library/svelte';
import { describe, expect, it } from 'vitest';
import { app } from '../lib/status.svelte';
import SignIn from '../screens/hall/SignIn.svelte';
import { stubTransport } from './stub';

describe('hall sign-in', () => {
  it('lists staff with a PIN, says a wrong PIN in Chinese, and signs the chosen person in', async () => {
    const stub = stubTransport({
      staff: () => [
        { id: 'hall-1', name: '陈国平', role: 'hall', has_pin: true },
        { id: 'hall-2', name: '王丽华', role: 'hall', has_pin: true },
        { id: 'hall-3', name: '张建军', role: 'hall', has_pin: false },
      ],
      sign_in: (a) => {
        if (a.pin !== '2580') throw { code: 'wrong_pin', message: 'that name and PIN do not match' };
        return { enrolled: true, sign_in_required: true, signed_in: { id: a.person, name: '王丽华' } };
      },
    });
    render(SignIn);
    await waitFor(() => expect(screen.getAllByTestId('sign-in-person').map((b) => b.textContent)).toEqual(['陈国平', '王丽华']));
    // No name chosen: the screen says so and asks nothing of the core.
    await fireEvent.input(screen.getByTestId('sign-in-pin'), { target: { value: '2580' } });
    await fireEvent.click(screen.getByTestId('sign-in-submit'));
    expect((await screen.findByTestId('sign-in-error')).textContent).toContain('请先选择您的姓名');
    expect(stub.of('sign_in')).toEqual([]);

    await fireEvent.click(screen.getAllByTestId('sign-in-person')[1]);
    await fireEvent.input(screen.getByTestId('sign-in-pin'), { target: { value: '1111' } });
    await fireEvent.click(screen.getByTestId('sign-in-submit'));
    await waitFor(() => expect(screen.getByTestId('sign-in-error').textContent).toContain('姓名和 PIN 不匹配'));
    expect((screen.getByTestId('sign-in-pin') as HTMLInputElement).value).toBe('');

    await fireEvent.input(screen.getByTestId('sign-in-pin'), { target: { value: '2580' } });
    await fireEvent.click(screen.getByTestId('sign-in-submit'));
    await waitFor(() => expect(app.status?.signed_in?.id).toBe('hall-2'));
    expect(stub.of('sign_in').at(-1)).toEqual({ person: 'hall-2', pin: '2580' });
  });
});
