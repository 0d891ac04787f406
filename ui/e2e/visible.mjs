// What a person reads on a screen: machine identities (request uuids, device ids, office ids)
// must not be among it. Shared by walker.mjs and hall.mjs.

/** Identities a person should never have to read, with what each is. */
export const MACHINE_IDS = [
  { what: 'a uuid', re: /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi },
  { what: 'a device id', re: /\bdev-[0-9a-f]{6,}/gi },
  { what: 'an office id', re: /\bdept-[a-z0-9_-]+/gi },
];

/** The machine identities in `text`, each with a little of the text around it. */
export function machineIdsIn(text) {
  const found = [];
  for (const { what, re } of MACHINE_IDS) {
    for (const m of text.matchAll(re)) {
      const around = text.slice(Math.max(0, m.index - 40), m.index + m[0].length + 20).replace(/\s+/g, ' ');
      found.push(`${what} "${m[0]}" in "…${around}…"`);
    }
  }
  return found;
}

/**
 * The visible text of the page (`innerText` of the body: what is drawn, not hidden elements or
 * attributes) holds no uuid, device id or office id. `what` names the screen in the message.
 * Names come from lists the screen loads beside its own data, so the screen gets `settleMs` to
 * finish loading; an id still shown after that fails.
 */
export async function assertNoMachineIds(page, what, settleMs = 3000) {
  const start = Date.now();
  for (;;) {
    const found = machineIdsIn(await page.innerText('body'));
    if (!found.length) break;
    if (Date.now() - start > settleMs) {
      throw new Error(`assertion failed: ${what} shows machine ids a person cannot read:\n  ${found.slice(0, 12).join('\n  ')}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  console.log(`${what}: no machine ids on screen`);
}
