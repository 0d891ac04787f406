// Reference lists (categories, departments, walkers) and the device's grids, loaded once and
// reloaded after a sync brings new ones.

import { api, type GridSummary, type Reference } from './api';
import { locale } from './i18n.svelte';

export const refs = $state<{ reference: Reference | null; grids: GridSummary[] | null }>({
  reference: null,
  grids: null,
});

export async function loadReference(): Promise<Reference | null> {
  try {
    refs.reference = await api.reference();
  } catch {
    /* keep what we had; screens fall back to codes */
  }
  return refs.reference;
}

export async function loadGrids(): Promise<GridSummary[] | null> {
  refs.grids = await api.grids();
  return refs.grids;
}

export function categoryName(code: string): string {
  const c = refs.reference?.categories.find((x) => x.code === code);
  if (!c) return code;
  return (locale.lang === 'en' ? c.en : c.zh) || c.zh || c.en || code;
}

export function departmentName(id: string | null | undefined): string {
  if (!id) return '';
  return refs.reference?.departments.find((d) => d.id === id)?.name ?? id;
}

export function walkerName(id: string | null | undefined): string {
  if (!id) return '';
  return refs.reference?.walkers.find((w) => w.id === id)?.name ?? id;
}

/** Whoever owns a request now (首问责任制): an office once assigned, else a person. */
export function ownerName(id: string | null | undefined): string {
  if (!id) return '';
  const office = refs.reference?.departments.find((d) => d.id === id);
  return office ? office.name : walkerName(id);
}

export function gridName(id: string | null | undefined): string {
  if (!id) return '';
  return refs.grids?.find((g) => g.id === id)?.name ?? id;
}
