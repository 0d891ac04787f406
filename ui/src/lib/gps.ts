// A GPS fix as a person reads it, and links that open it on a map. Coordinates are what the
// phone's GPS gives (WGS-84).

import type { Gps } from './api';

/** "30.12345, 120.56780" (five decimals: about a metre). */
export function coordsText(g: Pick<Gps, 'lat' | 'lon'>): string {
  return `${g.lat.toFixed(5)}, ${g.lon.toFixed(5)}`;
}

/** Whether a value is a usable fix (the core sends `null` when none was recorded). */
export function isGps(g: unknown): g is Gps {
  if (!g || typeof g !== 'object') return false;
  const { lat, lon } = g as Record<string, unknown>;
  return typeof lat === 'number' && typeof lon === 'number' && Number.isFinite(lat) && Number.isFinite(lon) && Math.abs(lat) <= 90 && Math.abs(lon) <= 180;
}

/**
 * The `geo:` URI (RFC 5870) with the point as a query too, so that map apps drop a pin on it
 * rather than only centring there. On Android it opens the phone's map app.
 */
export function geoUri(g: Pick<Gps, 'lat' | 'lon'>): string {
  const p = `${g.lat},${g.lon}`;
  return `geo:${p}?q=${p}`;
}

/**
 * Amap's (高德地图) marker page, which needs no key and is told the point is raw GPS
 * (`coordinate=wgs84`), so it is not shifted; on a phone it offers to open the Amap app
 * (https://lbs.amap.com/api/uri-api/guide/mobile-web/point). For the hall PC, where `geo:`
 * opens nothing.
 */
export function webMapUrl(g: Pick<Gps, 'lat' | 'lon'>, name = ''): string {
  const q = new URLSearchParams({ position: `${g.lon},${g.lat}`, coordinate: 'wgs84', callnative: '1', src: 'gridwalk' });
  if (name) q.set('name', name);
  return `https://uri.amap.com/marker?${q.toString()}`;
}
