/**
 * The audit store against real files in a fresh temporary directory per test: the chain, idempotence by event id,
 * concurrent appends, and what verify catches (an edited, removed, cut-off or unreadable record).
 */
import { mkdtemp, readFile, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  AuditEntry,
  AuditEntryError,
  AuditKind,
  AuditLogError,
  AuditRecord,
  GENESIS_HASH,
  MAX_RECORD_BYTES,
  append,
  canonicalJson,
  latchOf,
  read,
  recordHash,
  verify,
} from '../../src/audit/log';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'audit-log-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const at = (minutes: number) => new Date(T0 + minutes * 60_000).toISOString();

function entry(id: string, overrides: Partial<AuditEntry> = {}): AuditEntry {
  return {
    eventId: id,
    at: at(0),
    kind: AuditKind.Warning,
    actor: null,
    what: `event ${id}`,
    why: null,
    valuation: { totalValue: '9650.00', lossPct: '3.50' },
    ...overrides,
  };
}

async function lines(account = 'acct-1'): Promise<string[]> {
  return (await readFile(path.join(dir, `${account}.jsonl`), 'utf8')).split('\n').filter((l) => l !== '');
}
async function writeLines(ls: string[], account = 'acct-1'): Promise<void> {
  await writeFile(path.join(dir, `${account}.jsonl`), ls.map((l) => `${l}\n`).join(''));
}
async function only(account = 'acct-1') {
  const [result] = await verify(dir, account);
  if (!result) throw new Error('no result');
  return result;
}

describe('append', () => {
  it('chains records from a zero genesis hash, seq from 1, with hashes over canonical JSON', async () => {
    const result = await append(dir, 'acct-1', [entry('e1'), entry('e2'), entry('e3')]);
    expect(result.written.map((r) => r.seq)).toEqual([1, 2, 3]);
    expect(result.skipped).toEqual([]);
    const records = await read(dir, 'acct-1');
    expect(records).toEqual(result.written);
    expect(records[0]?.prevHash).toBe(GENESIS_HASH);
    expect(records[1]?.prevHash).toBe(records[0]?.hash);
    expect(records[2]?.prevHash).toBe(records[1]?.hash);
    for (const r of records) expect(recordHash(r)).toBe(r.hash);
    expect(result.head).toEqual({ seq: 3, hash: records[2]?.hash });
    // The line is the canonical JSON of the record, and the record's format is the documented one.
    const [first] = await lines();
    expect(first).toBe(canonicalJson(records[0]));
    expect(Object.keys(JSON.parse(first as string) as object).sort()).toEqual(
      ['accountId', 'actor', 'at', 'data', 'eventId', 'hash', 'kind', 'prevHash', 'seq', 'v', 'valuation', 'what', 'why'],
    );
    expect(records[0]).toMatchObject({ v: 1, accountId: 'acct-1', valuation: { totalValue: '9650.00' }, data: {} });
    const head = JSON.parse(await readFile(path.join(dir, 'acct-1.head'), 'utf8')) as unknown;
    expect(head).toEqual({ v: 1, accountId: 'acct-1', seq: 3, hash: records[2]?.hash });
  });

  it('continues the chain across calls', async () => {
    await append(dir, 'acct-1', [entry('e1')]);
    const second = await append(dir, 'acct-1', [entry('e2')]);
    const records = await read(dir, 'acct-1');
    expect(second.written[0]).toMatchObject({ seq: 2, prevHash: records[0]?.hash });
  });

  it('is idempotent by event id: a retry with the same ids writes nothing, a partly new batch writes only the new', async () => {
    const first = await append(dir, 'acct-1', [entry('e1'), entry('e2')]);
    const retry = await append(dir, 'acct-1', [entry('e1'), entry('e2')]);
    expect(retry.written).toEqual([]);
    expect(retry.skipped).toEqual(['e1', 'e2']);
    expect(retry.head).toEqual(first.head);
    const mixed = await append(dir, 'acct-1', [entry('e2', { what: 'changed on retry' }), entry('e3'), entry('e3')]);
    expect(mixed.written.map((r) => r.eventId)).toEqual(['e3']);
    expect(mixed.skipped).toEqual(['e2', 'e3']);
    const records = await read(dir, 'acct-1');
    expect(records.map((r) => r.eventId)).toEqual(['e1', 'e2', 'e3']);
    expect(records[1]?.what).toBe('event e2'); // the first write wins
    expect(await lines()).toHaveLength(3);
  });

  it('keeps a valid chain when appends to one account run concurrently', async () => {
    await Promise.all(Array.from({ length: 20 }, (_, i) => append(dir, 'acct-1', [entry(`c${i}`), entry(`d${i}`)])));
    const result = await only();
    expect(result).toMatchObject({ ok: true, records: 40, problem: null, warnings: [] });
    const ids = (await read(dir, 'acct-1')).map((r) => r.eventId);
    expect(new Set(ids).size).toBe(40);
    expect((await readdir(dir)).sort()).toEqual(['acct-1.head', 'acct-1.jsonl']); // no lock or temporary file left
  });

  it('writes different accounts to different files', async () => {
    await Promise.all([append(dir, 'a', [entry('e1')]), append(dir, 'b', [entry('e1'), entry('e2')])]);
    expect((await read(dir, 'a')).length).toBe(1);
    expect((await read(dir, 'b')).length).toBe(2);
    expect((await verify(dir)).map((r) => [r.accountId, r.ok, r.records])).toEqual([['a', true, 1], ['b', true, 2]]);
  });

  it('takes over a lock left by a dead process once it is stale, and waits for a fresh one', async () => {
    const lock = path.join(dir, 'acct-1.lock');
    await writeFile(lock, 'dead-process\n');
    const old = new Date(Date.now() - 60_000);
    await utimes(lock, old, old);
    await append(dir, 'acct-1', [entry('e1')], { lockStaleMs: 30_000 });
    await expect(stat(lock)).rejects.toThrow(/ENOENT/);

    await writeFile(lock, 'live-process\n');
    await expect(append(dir, 'acct-1', [entry('e2')], { lockStaleMs: 30_000, lockTimeoutMs: 200 })).rejects.toThrow(/held by another process/);
    expect(await readFile(lock, 'utf8')).toBe('live-process\n'); // not stolen
    expect((await read(dir, 'acct-1')).length).toBe(1);
  });

  it('refuses an invalid account id before touching the disk', async () => {
    for (const bad of ['../etc', 'a/b', '.hidden', '', 'x'.repeat(65), 'a b', 'acct\u0000']) {
      await expect(append(dir, bad, [entry('e1')])).rejects.toThrow(AuditEntryError);
    }
    await expect(read(dir, '../acct')).rejects.toThrow(/invalid account id/);
    await expect(verify(dir, 'a/b')).rejects.toThrow(/invalid account id/);
    expect(await readdir(dir)).toEqual([]);
  });

  it('refuses a batch with an entry that JSON cannot carry, writing none of it', async () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    const bad: unknown[] = [
      { data: { n: NaN } },
      { data: { big: BigInt(1) } },
      { data: { f: () => 1 } },
      { data: { when: new Date() } },
      { data: cyclic },
      { data: { list: [1, undefined] } },
      { data: JSON.parse('{"__proto__": {"polluted": true}}') as unknown },
      { kind: 'Nonsense' },
      { at: 'yesterday' },
      { eventId: 'has space' },
      { valuation: { totalValue: 9650 } },
      { valuation: { lossPct: '1e3' } },
    ];
    for (const override of bad) {
      await expect(append(dir, 'acct-1', [entry('ok'), { ...entry('bad'), ...(override as object) }])).rejects.toThrow(AuditEntryError);
    }
    expect(await readdir(dir)).toEqual([]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('bounds record size: clips what and why, replaces oversized data with a marker', async () => {
    const { written } = await append(dir, 'acct-1', [
      entry('e1', { what: 'w'.repeat(5000), why: 'y'.repeat(50_000), data: { blob: 'z'.repeat(20_000), nonce: 'n1' } }),
    ]);
    const [record] = written;
    expect(Array.from(record?.what ?? '').length).toBe(200);
    expect(Array.from(record?.why ?? '').length).toBe(2000);
    expect(record?.data).toEqual({ clipped: true, bytes: expect.any(Number) as number });
    for (const line of await lines()) expect(Buffer.byteLength(line) + 1).toBeLessThanOrEqual(MAX_RECORD_BYTES);
    expect((await only()).ok).toBe(true);
  });

  it('refuses to extend a log that is not intact, leaving it as found', async () => {
    await append(dir, 'acct-1', [entry('e1'), entry('e2'), entry('e3')]);
    const original = await lines();
    await writeLines(original.slice(0, 2));
    await expect(append(dir, 'acct-1', [entry('e4')])).rejects.toThrow(AuditLogError);
    expect(await lines()).toEqual(original.slice(0, 2));
  });
});

describe('verify', () => {
  beforeEach(async () => {
    await append(dir, 'acct-1', [1, 2, 3, 4, 5].map((i) => entry(`e${i}`)));
  });

  it('reports an intact log with its record count and head', async () => {
    const records = await read(dir, 'acct-1');
    expect(await only()).toEqual({ accountId: 'acct-1', ok: true, records: 5, head: { seq: 5, hash: records[4]?.hash }, problem: null, warnings: [] });
  });

  it('detects an edited record (one field of line 3 changed)', async () => {
    const ls = await lines();
    const edited = JSON.parse(ls[2] as string) as AuditRecord;
    edited.what = 'nothing happened';
    ls[2] = JSON.stringify(edited);
    await writeLines(ls);
    const result = await only();
    expect(result).toMatchObject({ ok: false, records: 2, problem: { kind: 'edited', seq: 3, message: 'record 3 was edited (hash mismatch)' } });
    await expect(read(dir, 'acct-1')).rejects.toThrow(/record 3 was edited/);
  });

  it('detects an edited record whose own hash was recomputed, by the next record\'s link', async () => {
    const ls = await lines();
    const edited = JSON.parse(ls[2] as string) as AuditRecord;
    edited.what = 'nothing happened';
    edited.hash = recordHash(edited);
    ls[2] = canonicalJson(edited);
    await writeLines(ls);
    expect((await only()).problem).toMatchObject({ kind: 'unlinked', seq: 4 });
  });

  it('detects a removed middle record', async () => {
    const ls = await lines();
    ls.splice(2, 1);
    await writeLines(ls);
    expect((await only()).problem).toEqual({ kind: 'removed', seq: 3, message: 'record 3 was removed (seq jumps from 2 to 4)' });
  });

  it('detects a truncated tail through the head file, which a chain alone cannot', async () => {
    await writeLines((await lines()).slice(0, 3));
    expect((await only()).problem).toEqual({ kind: 'truncated', seq: 4, message: 'the log ends at record 3 but its head file says 5: the tail was truncated' });
    // Negative control: without the head file the shorter chain is valid, and verify says it cannot tell.
    await rm(path.join(dir, 'acct-1.head'));
    const headless = await only();
    expect(headless.ok).toBe(true);
    expect(headless.warnings.join()).toMatch(/no head file/);
  });

  it('detects a line that is not JSON', async () => {
    const ls = await lines();
    ls[3] = '{"v":1,"seq":4, oops';
    await writeLines(ls);
    expect((await only()).problem).toEqual({ kind: 'invalid-json', seq: 4, message: 'record 4 is not valid JSON' });
  });

  it('refuses a record carrying a __proto__ key, and a record from another account', async () => {
    const ls = await lines();
    ls[1] = (ls[1] as string).replace('"data":{}', '"data":{"__proto__":{"polluted":true}}');
    await writeLines(ls);
    expect((await only()).problem).toMatchObject({ kind: 'invalid-record', seq: 2 });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();

    await append(dir, 'other', [entry('x1')]);
    await writeLines([...(await lines()).slice(0, 1), ...(await lines('other'))]);
    expect((await only()).problem?.message).toMatch(/record 2 is not a valid audit record \(it belongs to account "other"\)/);
  });

  it('treats an interrupted append (a torn last line, head not yet written) as intact, and the next append repairs it', async () => {
    const file = path.join(dir, 'acct-1.jsonl');
    await writeFile(file, `${(await lines()).join('\n')}\n{"v":1,"seq":6,"acc`);
    const torn = await only();
    expect(torn).toMatchObject({ ok: true, records: 5 });
    expect(torn.warnings.join()).toMatch(/incomplete last line/);
    await append(dir, 'acct-1', [entry('e6')]);
    expect(await only()).toMatchObject({ ok: true, records: 6, warnings: [] });
  });

  it('reports a log file that is gone while its head remains, and an account with no log', async () => {
    await rm(path.join(dir, 'acct-1.jsonl'));
    expect((await verify(dir)).map((r) => [r.accountId, r.ok, r.problem?.kind])).toEqual([['acct-1', false, 'missing']]);
    expect((await only('nobody')).problem?.message).toBe('no audit log');
  });
});

describe('latchOf', () => {
  function rec(seq: number, kind: AuditKind, minutes: number, extra: Partial<AuditRecord> = {}): AuditRecord {
    return { v: 1, seq, eventId: `e${seq}`, accountId: 'a', at: at(minutes), kind, actor: null, what: `${kind} ${seq}`, why: null, valuation: null, data: {}, prevHash: GENESIS_HASH, hash: GENESIS_HASH, ...extra };
  }
  const now = at(60);

  it('is not tripped with no trip, or when the last trip was reset', () => {
    expect(latchOf([], now)).toEqual({ tripped: false, recentNonces: [] });
    expect(latchOf([rec(1, AuditKind.Warning, 1)], now).tripped).toBe(false);
    expect(latchOf([rec(1, AuditKind.CircuitBreakerTriggered, 1), rec(2, AuditKind.CircuitBreakerReset, 2), rec(3, AuditKind.Warning, 3)], now).tripped).toBe(false);
  });

  it('is tripped when a trip follows the last reset, with that trip\'s time, reason and id', () => {
    const records = [
      rec(1, AuditKind.CircuitBreakerReset, 1),
      rec(2, AuditKind.CircuitBreakerTriggered, 2, { why: 'loss 5.50 % >= 5 %' }),
      rec(3, AuditKind.BreakerEnabled, 3),
    ];
    expect(latchOf(records, now)).toEqual({ tripped: true, at: at(2), reason: 'loss 5.50 % >= 5 %', eventId: 'e2', recentNonces: [] });
    const recalled = latchOf([rec(1, AuditKind.TripRecalled, 1)], now);
    expect(recalled).toMatchObject({ tripped: true, reason: 'TripRecalled 1', eventId: 'e1' });
  });

  it('collects the nonces of operator actions of the last 15 minutes only', () => {
    const records = [
      rec(1, AuditKind.OperatorAction, 60 - 16, { data: { nonce: 'too-old' } }),
      rec(2, AuditKind.OperatorAction, 60 - 15, { data: { nonce: 'at-edge' } }),
      rec(3, AuditKind.OperatorActionRefused, 59, { data: { nonce: 'refused' } }),
      rec(4, AuditKind.OperatorAction, 59, { data: { nonce: 'recent' } }),
      rec(5, AuditKind.OperatorAction, 59, { data: { nonce: 'recent' } }),
      rec(6, AuditKind.OperatorAction, 59, { data: { nonce: 7 } }),
      rec(7, AuditKind.OperatorAction, 61, { data: { nonce: 'ahead' } }),
    ];
    expect(latchOf(records, now).recentNonces).toEqual(['at-edge', 'recent', 'ahead']);
    expect(latchOf(records, now, 60_000).recentNonces).toEqual(['recent', 'ahead']);
  });

  it('reads what append wrote', async () => {
    await append(dir, 'acct-1', [
      entry('t1', { kind: AuditKind.CircuitBreakerTriggered, at: at(1), why: 'loss' }),
      entry('o1', { kind: AuditKind.OperatorAction, at: at(55), actor: { operator: 'alice', keyId: 'k1', approvedBy: 'bob', role: 'x' } as AuditEntry['actor'], data: { nonce: 'n-1' } }),
    ]);
    const records = await read(dir, 'acct-1');
    expect(records[1]?.actor).toEqual({ operator: 'alice', keyId: 'k1', approvedBy: 'bob' }); // unknown actor fields dropped
    expect(latchOf(records, now)).toEqual({ tripped: true, at: at(1), reason: 'loss', eventId: 't1', recentNonces: ['n-1'] });
  });
});
