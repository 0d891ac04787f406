// No poisoned records, with an independent writer: the JavaScript @automerge/automerge package
// (not the Rust crate the devices and the relay use) writes request documents and pushes them to
// a real relay process over HTTP, as a walker's enrolled phone.
//
// First a GOOD request, laid out exactly as the Rust side writes it (autosurgeon's mapping of
// `DocHeader`, `RequestBody`, the `LifecycleEvent` list and `PhotoRef`s: scalar strings, never
// Text; unit enum variants as their Rust name, `"Normal"`; struct variants as `{Variant: {…}}`;
// timestamps, unsigned and float scalars; `None` as null). The relay must store it: the writer is
// faithful, so every refusal below is about the poison. Then poisoned documents, fresh ones and
// changes on top of the good one: Text where a string belongs, `body` and `events` deleted,
// wrong types, missing fields and unknown enum variants in the header, body, events and photos.
// Each must be refused with 422 `document_unreadable` naming the document and the part, and
// leave the relay's digest unchanged; another walker of the grid receives only the good
// document. Last, a well-formed change by the same writer is stored and reaches her.
//
// Run: node tests/e2e/poison-js.mjs   (scripts/test.sh does, after building the workspace)
import { createHash, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ROOT, assert, gw, png, relayCli, startRelay, stop, tempDir } from './lib.mjs';

// Resolved from ui/node_modules, where ui/package.json pins it as a dev dependency.
const uiRequire = createRequire(join(ROOT, 'ui/package.json'));
const A = uiRequire('@automerge/automerge');
const AUTOMERGE_VERSION = JSON.parse(readFileSync(join(ROOT, 'ui/node_modules/@automerge/automerge/package.json'), 'utf8')).version;

const GRID = 'g1';
const WALKER = 'w1';

// ---- postcard, the relay's binary encoding for push and pull (protocol/src/lib.rs) ----

function varint(n) {
  let v = BigInt(n);
  const out = [];
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return Buffer.from(out);
}

function bytesField(buf) {
  return Buffer.concat([varint(buf.length), Buffer.from(buf)]);
}

/** `PushRequest { version: 1, docs: [DocChanges { doc_id, bytes }] }` */
function encodePush(docs) {
  return Buffer.concat([
    varint(1),
    varint(docs.length),
    ...docs.flatMap(({ docId, bytes }) => [bytesField(Buffer.from(docId, 'utf8')), bytesField(bytes)]),
  ]);
}

class Reader {
  constructor(buf) {
    this.buf = buf;
    this.pos = 0;
  }
  u8() {
    assert(this.pos < this.buf.length, 'postcard message cut short');
    return this.buf[this.pos++];
  }
  varint() {
    let v = 0n;
    let shift = 0n;
    for (;;) {
      const b = this.u8();
      v |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
      shift += 7n;
    }
  }
  int() {
    return Number(this.varint());
  }
  zigzag() {
    const v = this.varint();
    return Number((v >> 1n) ^ -(v & 1n));
  }
  bytes() {
    const n = this.int();
    const b = this.buf.subarray(this.pos, this.pos + n);
    assert(b.length === n, 'postcard bytes cut short');
    this.pos += n;
    return b;
  }
  str() {
    return this.bytes().toString('utf8');
  }
  bool() {
    return this.u8() === 1;
  }
  list(item) {
    return Array.from({ length: this.int() }, () => item());
  }
  receipt() {
    const hash = this.buf.subarray(this.pos, this.pos + 32);
    this.pos += 32;
    return { hash: hash.toString('hex'), receivedAt: this.zigzag() };
  }
}

function decodePushResponse(buf) {
  const r = new Reader(buf);
  const out = { stored: r.int(), duplicates: r.int(), receivedAt: r.zigzag() };
  out.receipts = r.list(() => ({ docId: r.str(), receipts: r.list(() => r.receipt()) }));
  return out;
}

function decodePullResponse(buf) {
  const r = new Reader(buf);
  const version = r.int();
  const docs = r.list(() => ({ docId: r.str(), snapshot: r.bool(), bytes: r.bytes(), receipts: r.list(() => r.receipt()) }));
  return { version, docs, cursor: r.str(), more: r.bool() };
}

// ---- the relay over raw HTTP ----

async function enrol(url, relayDir, name, walker) {
  const { code } = JSON.parse(relayCli(relayDir, 'enroll', '--name', name, '--role', 'walker', '--grids', GRID, '--walker', walker, '--json'));
  const r = await fetch(`${url}/v1/enroll`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ code, device_name: name }),
  });
  const body = await r.json();
  assert(r.status === 200, `enrolment of ${name}: ${r.status} ${JSON.stringify(body)}`);
  return body;
}

async function push(url, device, docId, changes) {
  const r = await fetch(`${url}/v1/push`, {
    method: 'POST',
    headers: { authorization: `Bearer ${device.token}`, 'content-type': 'application/x-gridwalk' },
    body: encodePush([{ docId, bytes: Buffer.concat(changes.map((c) => Buffer.from(c))) }]),
  });
  const raw = Buffer.from(await r.arrayBuffer());
  if (r.status === 200) return { status: 200, ...decodePushResponse(raw) };
  let body;
  try {
    body = JSON.parse(raw.toString('utf8'));
  } catch {
    body = { code: '(not JSON)', message: raw.toString('utf8').slice(0, 300) };
  }
  return { status: r.status, ...body };
}

async function pull(url, device, cursor = '') {
  const r = await fetch(`${url}/v1/pull?cursor=${encodeURIComponent(cursor)}&limit=500`, {
    headers: { authorization: `Bearer ${device.token}` },
  });
  const raw = Buffer.from(await r.arrayBuffer());
  assert(r.status === 200, `pull: ${r.status} ${raw.toString('utf8').slice(0, 300)}`);
  return decodePullResponse(raw);
}

/** Every page after `cursor`: the documents and the cursor to go on from. */
async function pullAll(url, device, cursor = '') {
  const docs = [];
  for (;;) {
    const page = await pull(url, device, cursor);
    docs.push(...page.docs);
    cursor = page.cursor;
    if (!page.more) return { docs, cursor };
  }
}

// ---- the documents, laid out as gridwalk-doc writes them through autosurgeon ----

const S = (s) => new A.ImmutableString(s);
const isPlain = (v) => v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype;

/**
 * Writes `value` under `key` of a change's proxy one field at a time. (Assigning a whole nested
 * literal at once does not keep `Uint` and `Float64` wrappers: they would become maps.) A plain
 * JS string becomes an Automerge Text object, as @automerge/automerge 3 writes every string;
 * the Rust side writes scalar strings (`S(…)`), so a plain string here is exactly the "Text
 * where a string belongs" of another implementation.
 */
function write(target, key, value) {
  if (Array.isArray(value)) {
    target[key] = [];
    value.forEach((v, i) => write(target[key], i, v));
  } else if (isPlain(value)) {
    target[key] = {};
    for (const [k, v] of Object.entries(value)) write(target[key], k, v);
  } else {
    target[key] = value;
  }
}

const T0 = Date.UTC(2026, 10, 20, 2, 30, 0); // 2026-11-20 10:30 in Shanghai
const PHOTO_HASH = createHash('sha256').update(png(64, 48)).digest('hex');

/** `DocHeader`, field for field. */
function header(id, device, at) {
  return {
    id: S(id),
    kind: S('Request'),
    grid: S(GRID),
    created_at: new Date(at),
    created_by: S(WALKER),
    device: S(device),
    schema: new A.Uint(1),
  };
}

/** `RequestBody`: an anonymous reporter, a place with a position, and a request number. */
function body(n) {
  return {
    reporter: S('Anonymous'),
    place: { address: S(`${GRID} 村道 ${n} 号`), gps: { lat: new A.Float64(30.7157), lon: new A.Float64(121.0706), accuracy_m: new A.Float64(12.5) } },
    micro_grid: null,
    category: S('streetlight'),
    description: S('路灯不亮，晚上看不见路'),
    urgency: S('Normal'),
    source: S('WalkIn'),
    visit: null,
    number: S(`261120-1-${n}`),
  };
}

/** `LifecycleEvent`: `lamport` unsigned, `at` a timestamp, `action` as autosurgeon writes an enum. */
function event(id, lamport, at, device, action) {
  return { id: S(id), lamport: new A.Uint(lamport), at: new Date(at), by: S(WALKER), device: S(device), action };
}

/** `PhotoRef` */
function photo(at) {
  return {
    hash: S(PHOTO_HASH),
    role: S('Before'),
    caption: S('灯杆'),
    added_at: new Date(at),
    added_by: S(WALKER),
    gps: null,
    removed: false,
    removed_at: null,
    removed_by: null,
  };
}

/** A whole request as one plain value: header, body, events (collected) and a photo. */
function requestValue(id, device, n) {
  return {
    header: header(id, device, T0),
    body: body(n),
    events: [event(randomUUID(), 1, T0, device, S('Collected'))],
    photos: [photo(T0 + 1000)],
  };
}

const actorOf = (device) => Buffer.from(device, 'utf8').toString('hex');

/** One change that writes every root key of `value`, as a device raising it would. */
function freshDocument(device, value, message) {
  const doc = A.change(A.init({ actor: actorOf(device) }), { message, time: Math.floor(T0 / 1000) }, (d) => {
    for (const [k, v] of Object.entries(value)) write(d, k, v);
  });
  return { doc, changes: A.getAllChanges(doc) };
}

/** A change on top of `base` by `device`: what `edit` does to the proxy. */
function changeOn(base, device, message, edit) {
  const before = A.clone(base, { actor: actorOf(device) });
  const after = A.change(before, { message, time: Math.floor(T0 / 1000) + 3600 }, edit);
  const changes = A.getChanges(before, after);
  assert(changes.length === 1, `${message}: the edit made one change`);
  return { doc: after, changes };
}

/** The list of ops of the changes, to check that a case writes what it says (e.g. a Text object). */
const opsOf = (changes) => changes.flatMap((c) => A.decodeChange(c).ops);

// ---- the poison ----

/**
 * Each case: the part the relay must name, and either `fresh` (edits the plain value of a whole
 * new request before it is written, in one change) or `change` (edits the stored good document
 * through the proxy, as one more change), and optionally `expectOp` checking the bytes.
 */
const makesText = (key) => (ops) => ops.some((o) => o.action === 'makeText' && o.key === key);
const CASES = [
  // header (written once, with the document: only fresh documents)
  { name: 'header: created_by written as Automerge Text', part: 'header', fresh: (v) => (v.header.created_by = WALKER), expectOp: makesText('created_by') },
  { name: 'header: created_at as a string', part: 'header', fresh: (v) => (v.header.created_at = S('2026-11-20 10:30')) },
  { name: 'header: schema as a float', part: 'header', fresh: (v) => (v.header.schema = new A.Float64(1.5)) },
  { name: 'header: grid missing', part: 'header', fresh: (v) => delete v.header.grid },
  { name: 'header: unknown kind "Petition"', part: 'header', fresh: (v) => (v.header.kind = S('Petition')) },
  { name: 'header: id naming another document', part: 'header', fresh: (v) => (v.header.id = S(randomUUID())) },
  { name: 'header: kind "Visit" over a request body', part: 'body', fresh: (v) => (v.header.kind = S('Visit')) },

  // body
  { name: 'body: description written as Automerge Text (new document)', part: 'body', fresh: (v) => (v.body.description = '路灯不亮（另一个实现写的）'), expectOp: makesText('description') },
  { name: 'body: description rewritten as Automerge Text', part: 'body', change: (d) => (d.body.description = '路灯不亮，已两周'), expectOp: makesText('description') },
  { name: 'body deleted', part: 'body', change: (d) => delete d.body },
  { name: 'body missing (new document)', part: 'body', fresh: (v) => delete v.body },
  { name: 'body: urgency as a number (new document)', part: 'body', fresh: (v) => (v.body.urgency = new A.Int(5)) },
  { name: 'body: urgency as a number', part: 'body', change: (d) => (d.body.urgency = new A.Int(5)) },
  { name: 'body: place replaced by a string', part: 'body', change: (d) => (d.body.place = S('村口')) },
  { name: 'body: gps latitude as a string', part: 'body', change: (d) => (d.body.place.gps.lat = S('30.7')) },
  { name: 'body: category missing (new document)', part: 'body', fresh: (v) => delete v.body.category },
  { name: 'body: source deleted', part: 'body', change: (d) => delete d.body.source },
  { name: 'body: unknown urgency "apocalyptic"', part: 'body', change: (d) => (d.body.urgency = S('apocalyptic')) },
  { name: 'body: unknown reporter variant (new document)', part: 'body', fresh: (v) => (v.body.reporter = { Alien: { name: S('ET') } }) },

  // events
  { name: 'events deleted', part: 'events', change: (d) => delete d.events },
  { name: 'events missing (new document)', part: 'events', fresh: (v) => delete v.events },
  { name: 'events replaced by a string', part: 'events', change: (d) => (d.events = S('closed')) },
  { name: 'events: emptied, so no collection (new document)', part: 'events', fresh: (v) => (v.events = []) },
  { name: 'events: by written as Automerge Text (new document)', part: 'events', fresh: (v) => (v.events[0].by = WALKER), expectOp: makesText('by') },
  { name: 'events: a progress note written as Automerge Text', part: 'events', change: (d, ctx) => write(d.events, d.events.length, ctx.event({ Progress: { note: '已联系供电所' } })), expectOp: makesText('note') },
  { name: 'events: at as a string (new document)', part: 'events', fresh: (v) => (v.events[0].at = S('2026-11-20')) },
  { name: 'events: lamport as a string', part: 'events', change: (d, ctx) => write(d.events, d.events.length, { ...ctx.event({ Progress: { note: S('已联系供电所') } }), lamport: S('2') }) },
  { name: 'events: an event that is a number', part: 'events', change: (d) => write(d.events, d.events.length, new A.Int(7)) },
  { name: 'events: device missing (new document)', part: 'events', fresh: (v) => delete v.events[0].device },
  { name: 'events: by missing', part: 'events', change: (d, ctx) => { const e = ctx.event({ FeedbackGiven: { note: S('已告知') } }); delete e.by; write(d.events, d.events.length, e); } },
  { name: 'events: unknown action "Bribed"', part: 'events', change: (d, ctx) => write(d.events, d.events.length, ctx.event(S('Bribed'))) },
  { name: 'events: unknown action variant {Teleported} (new document)', part: 'events', fresh: (v) => (v.events[0].action = { Teleported: { to: S('g2') } }) },
  { name: 'events: unknown rating "Ecstatic"', part: 'events', change: (d, ctx) => write(d.events, d.events.length, ctx.event({ Rated: { rating: S('Ecstatic'), comment: S('') } })) },

  // photos
  { name: 'photos: caption written as Automerge Text (new document)', part: 'photos', fresh: (v) => (v.photos[0].caption = '灯杆'), expectOp: makesText('caption') },
  { name: 'photos: hash written as Automerge Text', part: 'photos', change: (d, ctx) => write(d.photos, d.photos.length, { ...ctx.photo(), hash: PHOTO_HASH }), expectOp: makesText('hash') },
  { name: 'photos: removed as a string', part: 'photos', change: (d) => (d.photos[0].removed = S('no')) },
  { name: 'photos: added_at as a string (new document)', part: 'photos', fresh: (v) => (v.photos[0].added_at = S('today')) },
  { name: 'photos: an entry that is a number', part: 'photos', change: (d) => write(d.photos, d.photos.length, new A.Int(7)) },
  { name: 'photos: added_by missing', part: 'photos', change: (d, ctx) => { const p = ctx.photo(); delete p.added_by; write(d.photos, d.photos.length, p); } },
  { name: 'photos: hash missing (new document)', part: 'photos', fresh: (v) => delete v.photos[0].hash },
  { name: 'photos: unknown role "Sideways"', part: 'photos', change: (d) => (d.photos[0].role = S('Sideways')) },
  { name: 'photos: unknown role "During" (new document)', part: 'photos', fresh: (v) => (v.photos[0].role = S('During')) },
];

async function main() {
  const dir = tempDir('poison-js');
  const relayDir = join(dir, 'relay');
  const relay = await startRelay(relayDir);
  try {
    const phone = await enrol(relay.url, relayDir, 'js-phone', WALKER);
    const other = await enrol(relay.url, relayDir, 'other-phone', 'w2');
    assert(phone.walker === WALKER && phone.grids.join() === GRID, `the phone is w1's in ${GRID}: ${JSON.stringify(phone)}`);
    const device = phone.device_id;

    // 1. The good request: raised (header, body, the collection) in one change and its photo
    //    added in a second, as the Rust core writes them.
    const goodId = randomUUID();
    const value = requestValue(goodId, device, 1);
    const photos = value.photos;
    delete value.photos;
    const collectedId = value.events[0].id.val;
    let { doc: good } = freshDocument(device, value, `raise request #${collectedId}`);
    good = A.change(good, { message: 'add before photo', time: Math.floor((T0 + 1000) / 1000) }, (d) => write(d, 'photos', photos));
    const goodChanges = A.getAllChanges(good);
    assert(!opsOf(goodChanges).some((o) => o.action === 'makeText'), 'the good document has no Text object');
    const stored = await push(relay.url, phone, goodId, goodChanges);
    assert(stored.status === 200, `the good document is accepted: ${JSON.stringify(stored)}`);
    assert(stored.stored === goodChanges.length, `both changes of the good document are stored: ${JSON.stringify(stored)}`);
    console.log(`good: a request written in JS (${goodChanges.length} changes) is stored by the relay (200, stored ${stored.stored})`);

    // The other walker of the grid receives it, and it is the very document JS wrote.
    const first = await pullAll(relay.url, other);
    assert(first.docs.length === 1 && first.docs[0].docId === goodId, `the other walker receives the good request: ${first.docs.map((d) => d.docId)}`);
    const received = first.docs[0].snapshot ? A.load(first.docs[0].bytes) : A.loadIncremental(A.init(), first.docs[0].bytes);
    assert(A.getHeads(received).sort().join() === A.getHeads(good).sort().join(), 'the pulled document has the heads JS wrote');

    // 2. The poison, each pushed by the same phone.
    const digest = () => relayCli(relayDir, 'digest');
    const stats = () => relayCli(relayDir, 'stats');
    const statsBefore = stats();
    let writerCursor = (await pullAll(relay.url, phone)).cursor;
    let n = 1;
    for (const c of CASES) {
      n += 1;
      const ctx = {
        event: (action) => event(randomUUID(), 2, T0 + 3600_000, device, action),
        photo: () => photo(T0 + 3600_000),
      };
      let docId;
      let changes;
      if (c.fresh) {
        docId = randomUUID();
        const v = requestValue(docId, device, n);
        c.fresh(v);
        ({ changes } = freshDocument(device, v, `raise request #${n}`));
      } else {
        docId = goodId;
        ({ changes } = changeOn(good, device, `poison #${n}`, (d) => c.change(d, ctx)));
      }
      if (c.expectOp) assert(c.expectOp(opsOf(changes)), `${c.name}: the change writes what the case says`);
      // Any call with the token marks the device as seen, at most once a minute (a row the digest
      // covers); a pull just before keeps the push itself from moving that mark.
      writerCursor = (await pullAll(relay.url, phone, writerCursor)).cursor;
      const before = digest();
      const r = await push(relay.url, phone, docId, changes);
      const after = digest();
      const seen = JSON.stringify({ status: r.status, code: r.code, message: r.message, stored: r.stored });
      assert(r.status === 422 && r.code === 'document_unreadable', `${c.name}: refused with 422 document_unreadable, got ${seen}`);
      assert(r.message.includes(docId), `${c.name}: the message names the document: ${r.message}`);
      assert(r.message.includes(`its ${c.part} cannot be read`), `${c.name}: the message names the ${c.part}: ${r.message}`);
      assert(after === before, `${c.name}: the relay's digest is unchanged (${before} → ${after})`);
      console.log(`poison ${c.name}: 422 document_unreadable, nothing stored`);
    }
    assert(stats() === statsBefore, `the relay's counts are unchanged: ${statsBefore} → ${stats()}`);

    // 3. The other walker receives nothing new, and a device starting afresh only the good one.
    const since = await pullAll(relay.url, other, first.cursor);
    assert(since.docs.length === 0, `the other walker receives nothing after the poison: ${since.docs.map((d) => d.docId)}`);
    const afresh = await pullAll(relay.url, other);
    assert(afresh.docs.length === 1 && afresh.docs[0].docId === goodId, `a fresh pull holds only the good request: ${afresh.docs.map((d) => d.docId)}`);

    // 4. The control: a well-formed change by the same writer (she settles it on the spot).
    const solvedId = randomUUID();
    const control = changeOn(good, device, `triage #${solvedId}`, (d) =>
      write(d.events, d.events.length, event(solvedId, 2, T0 + 7200_000, device, { Triaged: { decision: { SolvedOnSpot: { note: S('已更换灯泡') } } } })),
    );
    const ok = await push(relay.url, phone, goodId, control.changes);
    assert(ok.status === 200 && ok.stored === 1, `a well-formed change by the same writer is stored: ${JSON.stringify(ok)}`);
    const later = await pullAll(relay.url, other, since.cursor);
    assert(later.docs.length === 1 && later.docs[0].docId === goodId, `the other walker receives the good change: ${later.docs.map((d) => d.docId)}`);
    const merged = A.loadIncremental(received, later.docs[0].bytes);
    assert(A.getHeads(merged).sort().join() === A.getHeads(control.doc).sort().join(), 'the other walker holds what JS wrote');

    // 5. A Rust device (the hall's CLI) reads the JS-written request like any other: its body,
    //    both events applied in order, the photo, and nothing set aside as damaged. (The photo's
    //    bytes are never uploaded, so its sync says the photo is not on the relay yet.)
    const hall = join(dir, 'hall.db');
    gw(hall, 'init', '--device', 'hall-pc', '--walker', 'hall-1');
    const hallCode = JSON.parse(relayCli(relayDir, 'enroll', '--name', 'hall', '--role', 'hall', '--json')).code;
    gw(hall, 'join', '--relay', relay.url, '--code', hallCode, '--name', 'hall');
    gw(hall, 'sync');
    const shown = JSON.parse(gw(hall, '--json', 'request', 'show', goodId));
    assert(shown.body.description === '路灯不亮，晚上看不见路' && shown.body.urgency === 'normal', `the hall reads the body: ${JSON.stringify(shown.body)}`);
    assert(shown.state.status === 'resolved' && shown.state.first_receiver === WALKER, `the hall folds the events: ${JSON.stringify(shown.state)}`);
    const history = shown.history.map((e) => `${e.action.type}:${e.applied}:${e.relay_received_at !== null}`).join();
    assert(history === 'collected:true:true,triaged:true:true', `the hall holds both events, applied, with relay times: ${history}`);
    const hallPhotos = JSON.parse(gw(hall, '--json', 'photo', 'list', goodId)).photos;
    assert(hallPhotos.length === 1 && hallPhotos[0].hash === PHOTO_HASH && hallPhotos[0].role === 'before', `the hall reads the photo entry: ${JSON.stringify(hallPhotos)}`);
    const check = JSON.parse(gw(hall, '--json', 'index', 'check'));
    assert(check.documents === 1 && check.index_matches_documents && check.damaged.length === 0, `the hall's index check: ${JSON.stringify(check)}`);
    console.log('good: the hall\'s CLI reads the JS-written request whole (body, both events applied, the photo; nothing damaged)');

    console.log(
      `poison-js: ${CASES.length} poisoned pushes refused with 422 document_unreadable, relay digest unchanged after each; ` +
        `the good request and a good change written by @automerge/automerge ${AUTOMERGE_VERSION} were stored and reached the other walker`,
    );
  } finally {
    await stop(relay.child);
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
