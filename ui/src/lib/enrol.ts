// The enrolment link a hall's QR code holds (`gridwalk-relay enroll --qr`):
// `gridwalk:enrol?relay=<address>&code=<code>`. A phone's scanner may type it into a field as
// text; the enrol screen then fills both fields from it.

export type EnrolLink = { relay: string | null; code: string };

export function parseEnrolLink(text: string): EnrolLink | null {
  const t = text.trim();
  const m = /^gridwalk:enrol\?(.*)$/i.exec(t);
  if (!m) return null;
  const params = new URLSearchParams(m[1]);
  const code = (params.get('code') ?? '').trim();
  if (!code) return null;
  const relay = (params.get('relay') ?? '').trim();
  return { relay: relay || null, code };
}
