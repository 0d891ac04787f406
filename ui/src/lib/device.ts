// Browser capabilities: reading picked photos and the optional GPS fix.

import type { Gps } from './api';

export type PickedPhoto = { name: string; size: number; type: string; data_base64: string };

/** Read a File as base64 (without the data: prefix). */
export function readAsBase64(file: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onerror = () => reject(r.error ?? new Error('read failed'));
    r.onload = () => {
      const s = String(r.result ?? '');
      const i = s.indexOf(',');
      resolve(i >= 0 ? s.slice(i + 1) : s);
    };
    r.readAsDataURL(file);
  });
}

export async function readPhotos(files: FileList | File[] | null): Promise<PickedPhoto[]> {
  const out: PickedPhoto[] = [];
  for (const f of Array.from(files ?? [])) {
    out.push({ name: f.name || 'photo.jpg', size: f.size, type: f.type || 'image/jpeg', data_base64: await readAsBase64(f) });
  }
  return out;
}

export function photoDataUrl(p: { type?: string; mime?: string; data_base64: string }): string {
  return `data:${p.mime ?? p.type ?? 'image/jpeg'};base64,${p.data_base64}`;
}

export function gpsAvailable(): boolean {
  return typeof navigator !== 'undefined' && !!navigator.geolocation;
}

/** One position fix; rejects with a reason code ('denied', 'unavailable', 'timeout'). Never blocks a form. */
export function getGps(timeoutMs = 15000): Promise<Gps> {
  return new Promise((resolve, reject) => {
    if (!gpsAvailable()) return reject('unavailable');
    navigator.geolocation.getCurrentPosition(
      (p) =>
        resolve({
          lat: Math.round(p.coords.latitude * 1e6) / 1e6,
          lon: Math.round(p.coords.longitude * 1e6) / 1e6,
          accuracy_m: Math.round(p.coords.accuracy),
        }),
      (e) => reject(e.code === 1 ? 'denied' : e.code === 3 ? 'timeout' : 'unavailable'),
      { enableHighAccuracy: true, timeout: timeoutMs, maximumAge: 60000 },
    );
  });
}

/**
 * Whether this app may read the position without asking: the browser says the permission is
 * already granted. Where it cannot tell (no Permissions API), the answer is no, so nothing ever
 * prompts unasked.
 */
export async function gpsAlreadyPermitted(): Promise<boolean> {
  try {
    if (!gpsAvailable() || typeof navigator.permissions?.query !== 'function') return false;
    const status = await navigator.permissions.query({ name: 'geolocation' as PermissionName });
    return status.state === 'granted';
  } catch {
    return false;
  }
}
