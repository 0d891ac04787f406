// Hash routing: #/grids, #/grid/<g>, #/place/<g>/<p>, #/place/<g>/<p>/visit, #/requests,
// #/request/new?grid=…&address=…&visit=…, #/request/<id>, #/sync.

export type Route = { path: string[]; query: Record<string, string> };

export function parseHash(hash: string): Route {
  const h = hash.replace(/^#\/?/, '');
  const qi = h.indexOf('?');
  const p = qi >= 0 ? h.slice(0, qi) : h;
  const q = qi >= 0 ? h.slice(qi + 1) : '';
  const path = p
    .split('/')
    .filter(Boolean)
    .map((s) => {
      try {
        return decodeURIComponent(s);
      } catch {
        return s;
      }
    });
  const query: Record<string, string> = {};
  new URLSearchParams(q).forEach((v, k) => (query[k] = v));
  return { path, query };
}

export const route = $state<Route>(parseHash(typeof location !== 'undefined' ? location.hash : ''));

if (typeof window !== 'undefined') {
  window.addEventListener('hashchange', () => {
    const r = parseHash(location.hash);
    route.path = r.path;
    route.query = r.query;
  });
}

/** Build a hash from path segments and an optional query. */
export function href(segments: string[], query?: Record<string, string | undefined | null>): string {
  let h = '#/' + segments.map(encodeURIComponent).join('/');
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') q.set(k, v);
    const s = q.toString();
    if (s) h += '?' + s;
  }
  return h;
}

export function go(segments: string[], query?: Record<string, string | undefined | null>): void {
  const h = href(segments, query);
  if (location.hash === h) return;
  location.hash = h;
}
