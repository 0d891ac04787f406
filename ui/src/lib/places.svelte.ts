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

/**
 * Households and enterprises known to a reader only by id (the access log's subjects): each one
 * not in the cache yet is looked for in the grids' lists, read one grid after another until all
 * are found. A grid that cannot be read is skipped.
 */
export async function findPlacesAnywhere(ids: string[], grids: string[]): Promise<void> {
  let wanted = ids.filter((id) => !placeCache[id]);
  for (const grid of grids) {
    if (!wanted.length) return;
    try {
      rememberPlaces(await api.places({ grid }));
    } catch {
      /* another grid's list is still worth reading */
    }
    wanted = wanted.filter((id) => !placeCache[id]);
  }
}
