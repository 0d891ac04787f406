// The request form's state (as kept in its draft) and the `raise_request` arguments made from it.

import { isMaskedPhone, type Gps, type NewRequestArgs, type Urgency } from './api';
import type { PickedPhoto } from './device';

export const REQUEST_DRAFT_KEY = 'request:new';

export type RequestDraft = {
  grid: string;
  category: string;
  description: string;
  urgency: Urgency;
  address: string;
  anonymous: boolean;
  reporter_name: string;
  reporter_phone: string;
  /** The place the form was opened from (its id and kind), if any. */
  place: string;
  place_kind: string;
  /** The visit this request was raised on, if any. */
  visit: string;
  gps: Gps | null;
  photos: PickedPhoto[];
};

/**
 * The reporter's phone as it may be sent: a masked number (138****5678, as lists show a
 * household's) is no number at all, so it becomes empty; the core then reaches a resident of a
 * known household on the household's own number.
 */
export function phoneToSend(phone: string | null | undefined): string {
  const p = (phone ?? '').trim();
  return isMaskedPhone(p) ? '' : p;
}

export function buildRequestArgs(f: RequestDraft): NewRequestArgs {
  const name = f.reporter_name.trim();
  const phone = phoneToSend(f.reporter_phone);
  const args: NewRequestArgs = {
    grid: f.grid,
    category: f.category,
    description: f.description.trim(),
    urgency: f.urgency,
    address: f.address.trim(),
    reporter:
      f.anonymous || !name
        ? { kind: 'anonymous' }
        : { kind: 'resident', name, ...(phone ? { phone } : {}), ...(f.place && f.place_kind === 'household' ? { household: f.place } : {}) },
  };
  if (f.gps) args.gps = f.gps;
  if (f.visit) args.visit = f.visit;
  if (f.photos.length) args.photos = f.photos.map((p) => ({ file_name: p.name, data_base64: p.data_base64 }));
  return args;
}
