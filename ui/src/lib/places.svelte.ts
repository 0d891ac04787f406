// Places seen in lists, so a place's screen can show it without asking again.

import { api, type Place } from './api';

export const placeCache = $state<Record<string, Place>>({});

export function rememberPlaces(list: Place[]): void {
  for (const p of list) placeCache[p.id] = p;
}

/** The place from the cache, or looked up in its grid by id. */
export async function findPlace(grid: string, id: string): Promise<Place | null> {
  if (placeCache[id]) return placeCache[id];
  const list = await api.places({ grid, query: id });
  rememberPlaces(list);
  return list.find((p) => p.id === id) ?? null;
}
