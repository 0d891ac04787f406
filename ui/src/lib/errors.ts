// Error codes to sentences in the user's language, each with the next step. The core's own text
// is English and can be a library's words; it never reaches the screen: an unknown code is shown
// by a general sentence that names the code, for the service hall to look up.

import { has, t } from './i18n.svelte';
import { toApiError } from './api';

export function errorText(e: unknown): string {
  const err = toApiError(e);
  if (err.code === 'invalid_input') {
    // The core's message reads "invalid <field>: <what>"; name the field when we know it.
    const m = /^invalid ([a-z_]+)/.exec(err.message || '');
    if (m && has('field.' + m[1])) return t('error.invalid_input_field', { field: t('field.' + m[1]) });
  }
  if (err.code === 'relay_refused') {
    // "the relay refused: <message> (<relay code>)": prefer the relay's own code when we know it.
    const m = /\(([a-z_]+)\)\s*$/.exec(err.message || '');
    if (m && has('error.' + m[1])) return t('error.' + m[1]);
  }
  if (err.code === 'too_many_attempts' && /\bPINs?\b/.test(err.message || '')) {
    // The relay says the same code for wrong enrolment codes and for an admin's wrong PINs (set
    // a PIN, issue an enrolment code, confirm a hand-over); the general sentence speaks of codes.
    // Its message ends "wait N minute(s)".
    const m = /wait (\d+) minute/.exec(err.message || '');
    return m ? t('error.too_many_pins_wait', { n: Number(m[1]) }) : t('error.too_many_pins');
  }
  if (has('error.' + err.code)) return t('error.' + err.code);
  if (/^photo_/.test(err.code)) return t('error.photo_other');
  return t('error.other', { code: err.code || 'unknown' });
}

/** A message to show, kept as a function so it follows a change of language. */
export type Msg = (() => string) | null;

/**
 * An error of the phone's own PIN (the PIN pad, choosing or changing it), in the walker's words:
 * a wrong PIN with the tries left before she has to wait, or how long to wait. The staff sign-in's
 * sentences for the same codes speak of names and of the administrator, which do not apply here.
 */
export function pinErrorText(e: unknown): string {
  const err = toApiError(e);
  if (err.code === 'wrong_pin') {
    // The core says "wrong PIN (3 more tries before attempts are slowed down)".
    const m = /(\d+) more tr/.exec(err.message || '');
    if (!m) return t('pin.wrong');
    const left = Number(m[1]);
    return left > 0 ? t('pin.wrongLeft', { n: left }) : t('pin.wrongWait');
  }
  if (err.code === 'pin_attempts_slowed') return t('pin.slowed');
  return errorText(err);
}

/** The seconds a `pin_attempts_slowed` error asks to wait ("try again in 30 seconds"), if it says. */
export function pinWaitSeconds(e: unknown): number | null {
  const err = toApiError(e);
  if (err.code !== 'pin_attempts_slowed') return null;
  const m = /(\d+)\s*seconds?/.exec(err.message || '');
  return m ? Number(m[1]) : null;
}
