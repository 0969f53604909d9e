/**
 * A seeded fuzz of everything a Temporal client can send a running guard: a thousand malformed inputs, as
 * the `balanceReport` signal, the `reportBalances` update and the operator updates (`reset`, `disable`, `enable`,
 * `halt`, `resyncSeq`), against one guard on the seed account (the demo's), with a real worker and real ccxt clients
 * routed to the paper exchange.
 *
 * After every batch: the `state` and `events` queries answer; nothing but counters changed (`reportsRejected` grew by
 * exactly the number of malformed signals: updates refused by their validator never reach history); every update was
 * refused with a non-retryable ApplicationFailure of its type (sent again when the server aborted it in the
 * continue-as-new race, see abortedByTaskFailure); and no run of the guard (continue-as-new followed back to the
 * first) has a failed workflow task. At the end a breaching report still trips the breaker and the shutdown leaves
 * no open order on the paper exchange.
 *
 * Every input is derived from FUZZ_SEED (default 7), printed in the test name, so that a failure can be replayed:
 *
 *   FUZZ_SEED=123 npx jest --selectProjects integration --testPathPatterns fuzz
 *
 * Nothing valid is ever sent: no valid report, and no valid reset, disable, halt or resyncSeq (they would
 * legitimately change state). Each mutation below makes its input invalid on its own (a runaway seq is well-formed
 * but refused all the same, and counted as rejected); the base reports carry the seq the guard already accepted, so
 * that an input a mutation failed to spoil would at worst be a duplicate, which the counter check reports.
 */
import { Client, Connection, WorkflowUpdateFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { temporal } from '@temporalio/proto';
import type { GuardEvent, GuardStateView } from '../../src/api/contract';
import { isUpdateAbortedByTaskFailure } from '../../src/client';
import { seededRandom } from '../../tooling/paper/faults';
import { SEED_CAPITAL, SEED_STEPS, perpReport, seedPaperAccount, spotReport } from '../../tooling/seed-scenario';
import { Harness, PERP, SPOT, eventually, startHarness, uniqueAccount } from './harness';

const SEED = process.env.FUZZ_SEED === undefined || process.env.FUZZ_SEED === '' ? 7 : Number(process.env.FUZZ_SEED);
if (!Number.isSafeInteger(SEED)) throw new Error(`FUZZ_SEED must be a whole number, got ${JSON.stringify(process.env.FUZZ_SEED)}`);

/** Inputs per batch, batches, and how many are in flight at once. */
const BATCH = 100;
const BATCHES = 10;
const IN_FLIGHT = 8;
/** Tries of one update aborted by the continue-as-new race (see abortedByTaskFailure). */
const MAX_UPDATE_ATTEMPTS = 5;
/** Bytes the generator may spend on strings of 1-100 KB (the total sent stays a few MB). */
const BIG_STRING_BUDGET = 8 * 1024 * 1024;
/** The most all inputs together may weigh as JSON. */
const MAX_TOTAL_BYTES = 24 * 1024 * 1024;

/** The seq both venues report before the fuzzing; every base report repeats it (a duplicate at worst). */
const BASE_SEQ = 1;
const HEALTHY_PRICE = '40000';
/** The seed scenario's 5.5 % loss. */
const BREACH = SEED_STEPS.at(-1)!;

type Rec = Record<string, unknown>;
const OPERATOR_ACTIONS = ['reset', 'disable', 'enable', 'halt', 'resyncSeq'] as const;
type OperatorAction = (typeof OPERATOR_ACTIONS)[number];
type Kind = 'signal' | 'reportBalances' | 'watcherObservation' | OperatorAction;

interface FuzzInput {
  index: number;
  kind: Kind;
  /** What was done to the input, for a failure message. */
  label: string;
  /** The argument sent; absent when `noArg` (the message is sent without any argument). */
  payload: unknown;
  noArg: boolean;
}

/** C0, DEL, C1 and the Unicode line/paragraph separators (what the guard calls control characters). */
const CONTROL = ['\u0000', '\u0001', '\u0007', '\b', '\t', '\n', '\u000b', '\f', '\r', '\u001b', '\u001f', '\u007f', '\u0080', '\u0085', '\u009f', '\u2028', '\u2029'];

// ---------------------------------------------------------------------------------------------------------------
// The generator

class Gen {
  /** Bytes of big strings generated so far. */
  bigBytes = 0;

  constructor(private readonly random: () => number) {}

  int(lo: number, hi: number): number {
    return lo + Math.floor(this.random() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.random() < p;
  }

  pick<T>(values: readonly T[]): T {
    return values[this.int(0, values.length - 1)]!;
  }

  /** Picks one thunk and calls it, so that only the chosen value is built (and draws from the generator). */
  oneOf<T>(...makers: (() => T)[]): T {
    return this.pick(makers)();
  }

  /** A string longer than `max` characters of `unit`; a quarter of them 1-100 KB while the budget lasts. */
  long(max: number, unit: string): string {
    let n = max + this.int(1, 64);
    if (this.chance(0.25)) {
      const big = this.int(1_000, 100_000);
      if (this.bigBytes + big <= BIG_STRING_BUDGET) {
        this.bigBytes += big;
        n = Math.max(n, big);
      }
    }
    return unit.repeat(Math.ceil(n / unit.length)).slice(0, n);
  }

  /** `text` with a control character inserted strictly inside it (at an end, trimming would remove some of them). */
  withControl(text: string): string {
    const at = this.int(1, text.length - 1);
    return `${text.slice(0, at)}${this.pick(CONTROL)}${text.slice(at)}`;
  }

  /** Nested arrays and objects, `depth` levels deep. */
  deep(depth = this.int(20, 3_000)): unknown {
    let v: unknown = '1';
    for (let i = 0; i < depth; i++) v = this.chance(0.5) ? [v] : { a: v };
    return v;
  }

  /** A value of a JSON type other than a string. */
  notAString(): unknown {
    return this.oneOf<unknown>(
      () => null,
      () => true,
      () => false,
      () => 0,
      () => 42,
      () => -1.5,
      () => 1e300,
      () => NaN, // sent as null
      () => Infinity, // sent as null
      () => [],
      () => ['x'],
      () => ({}),
      () => ({ a: 1 }),
    );
  }

  /** Any value of a wrong type for an object field (strings included: none of them is an object). */
  notAnObject(): unknown {
    return this.oneOf<unknown>(
      () => null,
      () => true,
      () => 0,
      () => 4000,
      () => 'USDT',
      () => '',
      () => [],
      () => [['USDT', '4000']],
      () => [{ USDT: '4000' }],
    );
  }
}

/** Sets an own, enumerable property, also for "__proto__" (an assignment would set the prototype instead). */
function setOwn(target: Rec, key: string, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

const clone = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

function baseReport(g: Gen): Rec {
  return clone(g.chance(0.5) ? spotReport(BASE_SEQ, HEALTHY_PRICE) : perpReport(BASE_SEQ, HEALTHY_PRICE)) as unknown as Rec;
}

const validPosition = (): Rec => ({ symbol: 'BTC/USDT:USDT', side: 'long', contracts: '0.1', unrealizedPnl: '0', entryPrice: '40000', markPrice: '40000' });

/** An invalid decimal string or a non-string for an amount or price (never "0" or "-0", which are valid amounts). */
function badDecimal(g: Gen): [unknown, string] {
  const value = g.oneOf<unknown>(
    () => g.pick([4000, 0.1, -5, 0, 1e21, NaN, Infinity, -Infinity]),
    () => g.pick(['NaN', 'Infinity', '-Infinity', '1e5', '1E5', '1,000', '0x10', ' 1', '1 ', '+1', '.5', '1.', '', 'abc', '1.2.3', '--1', '１２', '٣']),
    () => g.withControl('4000.00'),
    () => g.long(48, '1234567890'),
    () => g.pick<unknown>([null, true, [], ['1'], { a: '1' }]),
    () => g.deep(),
  );
  return [value, show(value)];
}

/** A negative amount (refused for balances, contracts and entry/mark prices). */
const negative = (g: Gen) => g.pick(['-1', '-0.5', '-4000.00', '-0.00000001']);

/** A key that is not an asset name (1-20 upper-case letters and digits). */
function badAssetKey(g: Gen): string {
  return g.oneOf(
    () => g.pick(['usdt', 'btc', 'Btc', 'uSDT', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'prototype', '', ' ', 'US DT', 'BTC/USDT', 'BTC-PERP', 'ÄPFEL', '１２', 'BTC ']),
    () => g.long(20, 'A'),
    () => g.withControl('USDT'),
  );
}

/** A short description of a value for a label (never the whole of a big one). */
function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'number') return `the number ${String(value)}`;
  if (typeof value === 'string') return value.length > 40 ? `a ${value.length}-character string` : JSON.stringify(value);
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (value === null) return 'null';
  if (typeof value === 'object') {
    const text = JSON.stringify(value);
    return text.length > 40 ? `an object of ${text.length} bytes` : text;
  }
  return String(value);
}

/** An asset map with `n` rows of upper-case keys. */
function rows(n: number, value: (i: number) => string): Rec {
  const map: Rec = {};
  for (let i = 0; i < n; i++) map[`A${i}`] = value(i);
  return map;
}

const isRec = (v: unknown): v is Rec => typeof v === 'object' && v !== null && !Array.isArray(v);
/**
 * The report's balances map to spoil further. When an earlier mutation already removed it or replaced it with a
 * value of the wrong type, a fresh map stands in for it (the report stays invalid either way).
 */
function balancesOf(r: Rec): Rec {
  if (!isRec(r.balances)) r.balances = { USDT: '4000.00' };
  return r.balances as Rec;
}
/** The report's prices map, made when missing or of the wrong type (prices are optional: only bad entries spoil it). */
function pricesOf(r: Rec): Rec {
  if (!isRec(r.prices)) r.prices = {};
  return r.prices as Rec;
}
/** The report's positions so far, or none when it has no list. */
const positionsOf = (r: Rec): unknown[] => (Array.isArray(r.positions) ? (r.positions as unknown[]) : []);

/** One mutation of a report; each makes the report invalid by itself. Returns what it did. */
const REPORT_MUTATIONS: ((r: Rec, g: Gen) => string)[] = [
  // venue
  (r) => (delete r.venue, 'venue missing'),
  (r, g) => ((r.venue = g.notAString()), `venue ${show(r.venue)}`),
  (r, g) => {
    r.venue = g.oneOf(
      () => g.pick(['kraken', 'BINANCE-SPOT', `${SPOT} `, ` ${PERP}`, 'binance', '', 'binance-spot-2', 'binance_usdm']),
      () => g.long(40, 'v'),
      () => g.withControl(g.pick([SPOT, PERP])),
    );
    return `unknown venue ${show(r.venue)}`;
  },
  // seq
  (r) => (delete r.seq, 'seq missing'),
  (r, g) => ((r.seq = g.pick<unknown>(['1', '2', 'one', null, true, [], [2], {}, { value: 2 }])), `seq ${show(r.seq)}`),
  (r, g) => ((r.seq = g.pick([1.5, -1, 2 ** 60, 2 ** 53, -(2 ** 53), Number.MAX_VALUE, NaN, Infinity, -Infinity, 0.1, 2.000001])), `seq ${show(r.seq)}`),
  (r, g) => ((r.seq = BASE_SEQ + 1_000_001 + g.int(0, 1e9)), `runaway seq ${String(r.seq)}`),
  // asOf
  (r, g) => ((r.asOf = g.pick<unknown>([Date.now(), 0, null, true, [], {}, { date: '2026-01-31T12:00:00Z' }])), `asOf ${show(r.asOf)}`),
  (r, g) => {
    r.asOf = g.oneOf(
      () =>
        g.pick([
          'yesterday',
          'now',
          '',
          ' ',
          'NaN',
          '0',
          '2026-13-45T25:61:00Z',
          '2026-01-31',
          '12:00:00',
          '2026-01-31T12:00:00+99:99',
          '+275760-09-13T00:00:00Z',
          '2026-01-31T12:00:00Z ',
          'Sat, 31 Jan 2026 12:00:00 GMT',
        ]),
      () => g.withControl('2026-01-31T12:00:00Z'),
      () => g.long(40, '2'),
    );
    return `asOf ${show(r.asOf)}`;
  },
  // balances
  (r) => (delete r.balances, 'balances missing'),
  (r, g) => ((r.balances = g.notAnObject()), `balances ${show(r.balances)}`),
  (r, g) => {
    const [value, what] = badDecimal(g);
    const asset = g.pick(['USDT', 'BTC', 'ETH']);
    setOwn(balancesOf(r), asset, value);
    return `balances.${asset} ${what}`;
  },
  (r, g) => {
    const asset = g.pick(['USDT', 'BTC']);
    setOwn(balancesOf(r), asset, negative(g));
    return `balances.${asset} negative`;
  },
  (r, g) => {
    const key = badAssetKey(g);
    setOwn(balancesOf(r), key, g.pick(['1', '0.5', '100']));
    return `balances key ${show(key)}`;
  },
  (r, g) => {
    const n = g.pick([2_001, 2_500, 3_000]);
    r.balances = { ...rows(n, (i) => (i % 7 === 0 ? '0.1' : '0')) };
    return `${n}-key balance map`;
  },
  (r, g) => {
    const n = g.int(201, 260);
    r.balances = { USDT: '4000.00', ...rows(n, (i) => `0.${i + 1}`) };
    return `${n + 1} non-zero balances`;
  },
  (r, g) => ((r.balances = { USDT: g.deep() }), 'balances nested deep'),
  // prices
  (r, g) => ((r.prices = g.notAnObject()), `prices ${show(r.prices)}`),
  (r, g) => {
    const value = g.oneOf<unknown>(
      () => g.pick(['0', '0.00', '-0', '-1', '-40000']),
      () => badDecimal(g)[0],
    );
    setOwn(pricesOf(r), 'BTC', value);
    return `prices.BTC ${show(value)}`;
  },
  (r, g) => {
    const key = badAssetKey(g);
    setOwn(pricesOf(r), key, '40000');
    return `prices key ${show(key)}`;
  },
  (r, g) => {
    const n = g.int(201, 300);
    r.prices = rows(n, (i) => `${i + 1}`);
    return `${n} prices`;
  },
  // positions
  (r, g) => ((r.positions = g.pick<unknown>([null, {}, { 0: validPosition() }, 'long', 1, true, ''])), `positions ${show(r.positions)}`),
  (r, g) => {
    const n = g.int(101, 140);
    r.positions = Array.from({ length: n }, validPosition);
    return `${n} positions`;
  },
  (r, g) => {
    const item = g.oneOf<unknown>(
      () => null,
      () => 'pos',
      () => 1,
      () => [],
      () => [validPosition()],
      () => g.deep(),
    );
    r.positions = [...positionsOf(r), item];
    return `positions item ${show(item)}`;
  },
  (r, g) => {
    const position = validPosition();
    const field = g.pick(['symbol', 'side', 'contracts', 'unrealizedPnl', 'entryPrice', 'markPrice', 'missing', 'unknown'] as const);
    let what: string;
    switch (field) {
      case 'symbol':
        position.symbol = g.oneOf<unknown>(
          () => '',
          () => g.notAString(),
          () => g.withControl('BTC/USDT:USDT'),
          () => g.long(64, 'S'),
        );
        what = `symbol ${show(position.symbol)}`;
        break;
      case 'side':
        position.side = g.oneOf<unknown>(
          () => g.pick(['LONG', 'Long', 'SHORT', 'buy', 'sell', 'both', '', 'long ', ' short']),
          () => g.notAString(),
          () => g.withControl('long'),
        );
        what = `side ${show(position.side)}`;
        break;
      case 'contracts':
      case 'entryPrice':
      case 'markPrice':
        position[field] = g.chance(0.3) ? negative(g) : badDecimal(g)[0];
        what = `${field} ${show(position[field])}`;
        break;
      case 'unrealizedPnl':
        position.unrealizedPnl = badDecimal(g)[0];
        what = `unrealizedPnl ${show(position.unrealizedPnl)}`;
        break;
      case 'missing': {
        const missing = g.pick(['symbol', 'side', 'contracts', 'unrealizedPnl']);
        delete position[missing];
        what = `${missing} missing`;
        break;
      }
      case 'unknown': {
        const key = g.pick(['leverage', 'Side', 'pnl', '__proto__', 'constructor', 'toString']);
        setOwn(position, key, g.pick<unknown>(['10', 10, null, {}]));
        what = `unknown field ${JSON.stringify(key)}`;
        break;
      }
    }
    r.positions = [...positionsOf(r), position];
    return `position ${what}`;
  },
  // unknown fields
  (r, g) => {
    const key = g.oneOf(
      () => g.pick(['extra', 'Venue', 'SEQ', 'balance', 'price', 'position', 'prototype', 'constructor', '__proto__', 'toString', '', 'as_of', 'valueOf']),
      () => g.withControl('extra'),
      () => g.long(64, 'k'),
    );
    setOwn(r, key, g.oneOf<unknown>(
      () => g.notAString(),
      () => 'x',
      () => g.deep(),
      () => ({ venue: SPOT, seq: 99 }),
    ));
    return `unknown field ${show(key)}`;
  },
];

/** Replaces the whole payload (or sends none). */
function wholeReport(g: Gen): { payload: unknown; noArg: boolean; label: string } {
  const payload = g.oneOf<unknown>(
    () => undefined,
    () => null,
    () => 42,
    () => NaN,
    () => 'report',
    () => g.long(64, 'r'),
    () => true,
    () => [],
    () => [baseReport(g)],
    () => ({}),
    () => g.deep(),
    () => JSON.stringify(baseReport(g)), // double-encoded
    () => JSON.parse(`{"__proto__": ${JSON.stringify(baseReport(g))}}`) as unknown,
  );
  return { payload, noArg: payload === undefined, label: `payload ${show(payload)}` };
}

function malformedReport(g: Gen): { payload: unknown; noArg: boolean; label: string } {
  if (g.chance(0.1)) return wholeReport(g);
  const report = baseReport(g);
  const count = 1 + (g.chance(0.3) ? 1 : 0) + (g.chance(0.1) ? 1 : 0);
  const labels: string[] = [];
  for (let i = 0; i < count; i++) labels.push(g.pick(REPORT_MUTATIONS)(report, g));
  return { payload: report, noArg: false, label: labels.join('; ') };
}

/** An operator or reason that is refused: missing, empty, blank, too long, with a control character, of a wrong type. */
function badText(g: Gen, max: number, valid: string): { value: unknown; missing: boolean } {
  return g.oneOf<{ value: unknown; missing: boolean }>(
    () => ({ value: undefined, missing: true }),
    () => ({ value: g.pick(['', ' ', '   ', '\t \u00a0']), missing: false }),
    () => ({ value: g.notAString(), missing: false }),
    () => ({ value: g.pick([[valid], { name: valid }]), missing: false }),
    () => ({ value: g.long(max, g.pick(['o', 'ab', 'é'])), missing: false }),
    () => ({ value: ` ${g.long(max, 'z')} `, missing: false }),
    () => ({ value: g.withControl(valid), missing: false }),
  );
}

function malformedOperatorRequest(g: Gen, action: OperatorAction): { payload: unknown; noArg: boolean; label: string } {
  if (g.chance(0.12)) {
    const payload = g.oneOf<unknown>(
      () => undefined,
      () => null,
      () => 7,
      () => 'alice',
      () => true,
      () => [],
      () => [{ operator: 'alice', reason: 'fuzz' }],
      () => ({}),
      () => g.deep(),
      () => JSON.stringify({ operator: 'alice', reason: 'fuzz' }),
    );
    return { payload, noArg: payload === undefined, label: `payload ${show(payload)}` };
  }
  const request: Rec = { operator: 'fuzz-operator', reason: 'fuzzing the guard' };
  if (action === 'resyncSeq') {
    request.venue = g.pick([SPOT, PERP]);
    request.seq = g.int(0, 1_000);
  }
  const mutations: ((r: Rec) => string)[] = [
    (r) => {
      const bad = badText(g, 64, 'alice');
      if (bad.missing) delete r.operator;
      else r.operator = bad.value;
      return `operator ${show(bad.value)}`;
    },
    (r) => {
      const bad = badText(g, 500, 'losses reviewed');
      if (bad.missing) delete r.reason;
      else r.reason = bad.value;
      return `reason ${show(bad.value)}`;
    },
    (r) => {
      const extra = action === 'resyncSeq' ? ['force', 'Operator', '__proto__', 'constructor', 'seqs', 'venues'] : ['force', 'venue', 'seq', 'Operator', '__proto__', 'constructor'];
      const key = g.pick(extra);
      setOwn(r, key, g.pick<unknown>([true, 'yes', 1, null, {}]));
      return `unknown field ${JSON.stringify(key)}`;
    },
  ];
  if (action === 'resyncSeq') {
    mutations.push(
      (r) => (delete r.venue, 'venue missing'),
      (r) => {
        r.venue = g.oneOf<unknown>(
          () => g.pick(['kraken', 'BINANCE-SPOT', `${SPOT} `, '', 'any', 'binance']),
          () => g.notAString(),
          () => g.withControl(SPOT),
          () => g.long(40, 'v'),
        );
        return `unknown venue ${show(r.venue)}`;
      },
      (r) => (delete r.seq, 'seq missing'),
      // Never NaN or Infinity: JSON sends them as null, which is a valid seq ("accept the next report").
      (r) => ((r.seq = g.pick<unknown>([-1, 1.5, 2 ** 60, 2 ** 53, -(2 ** 53), Number.MAX_VALUE, 'any', '1', true, [], [1], {}])), `seq ${show(r.seq)}`),
    );
  }
  const count = 1 + (g.chance(0.3) ? 1 : 0);
  const labels: string[] = [];
  for (let i = 0; i < count; i++) labels.push(g.pick(mutations)(request));
  return { payload: request, noArg: false, label: labels.join('; ') };
}

/** A well-formed watcher observation of the running watcher (generation 1): each mutation below makes it invalid. */
function baseObservation(): Rec {
  return {
    generation: 1,
    reason: 'snapshot',
    level: 'ok',
    venues: { [SPOT]: { feed: { mode: 'streaming', dataAgeSeconds: 0.1, fallbacks: 0, lastError: null }, reading: { balances: { USDT: '1' }, prices: {}, positions: [] }, ordersOpened: 0 } },
  };
}

type ObservationMutation = (o: Rec, spot: Rec, g: Gen) => string;
const OBSERVATION_MUTATIONS: ObservationMutation[] = [
  (_o, spot, g) => {
    const [value, label] = badDecimal(g);
    // A bad decimal that still parses as a valid amount would be accepted: keep only refusals.
    (spot.reading as Rec).balances = { USDT: typeof value === 'string' && /^\d+(\.\d+)?$/.test(value) ? '-1' : value };
    return `balance ${label}`;
  },
  (o, _spot, g) => ((o.generation = g.pick<unknown>([0, -1, 1.5, '1', null, 2 ** 60, true])), `generation ${show(o.generation)}`),
  (_o, spot, g) => {
    const feed = spot.feed as Rec;
    feed.dataAgeSeconds = g.pick<unknown>([-1, '1', 31_536_001, [], {}]);
    return `dataAgeSeconds ${show(feed.dataAgeSeconds)}`;
  },
  (_o, spot, g) => {
    const feed = spot.feed as Rec;
    feed.mode = g.pick<unknown>(['websocket', '', 1, null]);
    return `mode ${show(feed.mode)}`;
  },
  (o, spot) => ((o.venues = { kraken: spot }), 'unknown venue kraken'),
  (o, _spot, g) => ((o.reason = g.pick<unknown>(['later', '', 7, null])) !== undefined ? `reason ${show(o.reason)}` : 'reason'),
  (_o, spot, g) => ((spot.ordersOpened = g.pick<unknown>([-1, 1.5, 'many', 2_000_000])) !== undefined ? `ordersOpened ${show(spot.ordersOpened)}` : ''),
  (o) => ((o.extra = 1), 'an extra field'),
  (_o, spot, g) => (((spot.reading as Rec).positions = g.pick<unknown>([{}, 'none', [{ symbol: 'BTC/USDT:USDT' }]])) !== undefined ? 'bad positions' : ''),
];

function malformedObservation(g: Gen): { payload: unknown; noArg: boolean; label: string } {
  if (g.chance(0.1)) return wholeReport(g);
  const observation = baseObservation();
  const spot = (observation.venues as Rec)[SPOT] as Rec;
  const label = g.pick(OBSERVATION_MUTATIONS)(observation, spot, g);
  return { payload: observation, noArg: false, label };
}

/** Every input of the run, in order: 30 % report signals, 10 % watcher observations, 30 % `reportBalances`, 30 % operator updates. */
function generateInputs(seed: number, count: number): FuzzInput[] {
  const g = new Gen(seededRandom(seed));
  return Array.from({ length: count }, (_, index) => {
    const roll = g.int(0, 99);
    const kind: Kind = roll < 30 ? 'signal' : roll < 40 ? 'watcherObservation' : roll < 70 ? 'reportBalances' : g.pick(OPERATOR_ACTIONS);
    const made =
      kind === 'signal' || kind === 'reportBalances' ? malformedReport(g) : kind === 'watcherObservation' ? malformedObservation(g) : malformedOperatorRequest(g, kind);
    return { index, kind, ...made };
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The run

const { EventType, WorkflowTaskFailedCause } = temporal.api.enums.v1;

let h: Harness;
/** For histories: a bigger receive limit than the default, as 100 KB signals add up. */
let historyConnection: Connection;
let historyClient: Client;

beforeAll(async () => {
  h = await startHarness('fuzz');
  historyConnection = await Connection.connect({ address: h.address, channelArgs: { 'grpc.max_receive_message_length': 64 * 1024 * 1024 } });
  historyClient = new Client({ connection: historyConnection });
}, 60_000);
afterAll(async () => {
  await historyConnection?.close();
  await h?.stop();
});

/**
 * The failed workflow tasks of every run of the guard, continue-as-new followed back to the first run. A closed
 * run's history is final, so it is read once. WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND is left out: the server
 * fails a task that completes the run (continue-as-new) when a message arrived meanwhile, and the worker retries it.
 */
const closedRunsChecked = new Set<string>();
async function failedWorkflowTasks(workflowId: string): Promise<string[]> {
  const found: string[] = [];
  let runId: string | undefined = (await historyClient.workflow.getHandle(workflowId).describe()).runId;
  let newest = true;
  while (runId && !closedRunsChecked.has(runId)) {
    const history: temporal.api.history.v1.IHistory = await historyClient.workflow.getHandle(workflowId, runId).fetchHistory();
    const events = history.events ?? [];
    for (const e of events) {
      if (e.eventType !== EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED) continue;
      const attributes = e.workflowTaskFailedEventAttributes;
      const cause = WorkflowTaskFailedCause[attributes?.cause ?? 0] ?? String(attributes?.cause);
      if (cause === 'WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND') continue;
      found.push(`run ${runId} event ${String(e.eventId)}: ${cause}: ${attributes?.failure?.message ?? ''}`);
    }
    // The newest run may still be running (or have just closed): read again next time.
    if (!newest) closedRunsChecked.add(runId);
    newest = false;
    runId = events[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
  }
  return found;
}

/**
 * The server's answer to an update that was delivered in a workflow task the server then failed (WorkflowNotReady,
 * FAILED_PRECONDITION): here always the continue-as-new race of {@link failedWorkflowTasks} (a message arrived while
 * the task that continues as new was completing), which drops whatever that task answered, the validator's
 * rejection included. The update was never decided, so the caller sends it again; the history check below proves
 * that no other kind of workflow task failed.
 */
function abortedByTaskFailure(err: unknown): boolean {
  return isUpdateAbortedByTaskFailure(err);
}

/** Runs `fn` over `items` with at most `limit` in flight. */
async function inPool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  });
  await Promise.all(lanes);
}

/** What must not change under malformed input: everything but the counters a rejection or the timer moves. */
function invariant(s: GuardStateView) {
  const counters: Partial<GuardStateView['counters']> = { ...s.counters };
  delete counters.reportsRejected;
  delete counters.valuations;
  // The guard's own watcher speaks during the run (snapshots); forged observations are counted as rejected.
  delete counters.observations;
  delete counters.observationsRejected;
  delete counters.observationsIgnored;
  return {
    state: s.state,
    breaker: s.breaker,
    lastSeq: s.lastSeq,
    totalValue: s.totalValue,
    lossPct: s.lossPct,
    pnl: s.pnl,
    perVenueValue: s.perVenueValue,
    initialCapital: s.initialCapital,
    warningPct: s.warningPct,
    thresholdPct: s.thresholdPct,
    blind: s.blind,
    unpriced: s.unpriced,
    shutdown: s.shutdown,
    shutdownInProgress: s.shutdownInProgress,
    counters,
  };
}

const otherThanRejections = (events: GuardEvent[]) => events.filter((e) => e.type !== 'ReportRejected' && e.type !== 'ObservationRejected');

describe('fuzzing a running guard', () => {
  it(`refuses ${BATCH * BATCHES} malformed signals and updates without a failed workflow task or a change of state, then still trips (FUZZ_SEED=${SEED})`, async () => {
    const started = Date.now();
    const inputs = generateInputs(SEED, BATCH * BATCHES);
    const sent: Record<Kind, number> = { signal: 0, reportBalances: 0, watcherObservation: 0, reset: 0, disable: 0, enable: 0, halt: 0, resyncSeq: 0 };
    let totalBytes = 0;

    h.paper.exchange.seed(seedPaperAccount());
    const accountId = uniqueAccount('fuzz');
    const { workflowId } = await h.breaker.startGuard({ accountId, initialCapital: SEED_CAPITAL, venues: [SPOT, PERP] });
    await eventually(() => h.breaker.state(accountId), (s) => s.lastValuationAt !== null);
    await h.breaker.report(accountId, spotReport(BASE_SEQ, HEALTHY_PRICE));
    const healthy = await h.breaker.report(accountId, perpReport(BASE_SEQ, HEALTHY_PRICE));
    expect(healthy).toMatchObject({ outcome: 'accepted', state: 'Active', totalValue: '10000', lossPct: '0.00', lastSeq: { [SPOT]: BASE_SEQ, [PERP]: BASE_SEQ } });

    const before = await h.breaker.state(accountId);
    const eventsBefore = await h.breaker.events(accountId);
    const handle = h.client.workflow.getHandle(workflowId);
    let signalsSent = 0;
    let observationsSent = 0;
    let updatesRetried = 0;
    /** Sends an update again when the continue-as-new race aborted it (see abortedByTaskFailure). */
    const sendUpdate = async <T>(send: () => Promise<T>): Promise<T> => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await send();
        } catch (err) {
          if (!abortedByTaskFailure(err) || attempt === MAX_UPDATE_ATTEMPTS) throw err;
          updatesRetried += 1;
          await new Promise((resolve) => setTimeout(resolve, 50 * attempt));
        }
      }
    };

    for (let b = 0; b < BATCHES; b++) {
      const problems: string[] = [];
      const where = (input: FuzzInput) => `FUZZ_SEED=${SEED} input #${input.index} (${input.kind}: ${input.label})`;
      /** An update must be refused by the guard's validator: a non-retryable failure of the action's type. */
      const checkRefusal = (input: FuzzInput, err: unknown) => {
        const cause = err instanceof WorkflowUpdateFailedError ? err.cause : undefined;
        const expectedType = input.kind === 'reportBalances' ? 'InvalidReport' : 'InvalidOperatorRequest';
        if (!(cause instanceof ApplicationFailure) || !cause.nonRetryable || cause.type !== expectedType) {
          const detail = cause ?? (err as { cause?: unknown }).cause;
          problems.push(`${where(input)}: expected a WorkflowUpdateFailedError with a non-retryable ${expectedType}, got ${String(err)} (cause: ${String(detail)})`);
        }
      };
      await inPool(inputs.slice(b * BATCH, (b + 1) * BATCH), IN_FLIGHT, async (input) => {
        const args: unknown[] = input.noArg ? [] : [input.payload];
        totalBytes += input.noArg ? 0 : (JSON.stringify(input.payload) ?? '').length;
        sent[input.kind] += 1;
        if (input.kind === 'signal') {
          try {
            await handle.signal('balanceReport', ...args);
            signalsSent += 1;
          } catch (err) {
            problems.push(`${where(input)}: the signal could not be sent: ${String(err)}`);
          }
          return;
        }
        if (input.kind === 'watcherObservation') {
          try {
            await handle.signal('watcherObservation', ...args);
            observationsSent += 1;
          } catch (err) {
            problems.push(`${where(input)}: the signal could not be sent: ${String(err)}`);
          }
          return;
        }
        const name = input.kind;
        try {
          const answer = await sendUpdate(() => (input.noArg ? handle.executeUpdate(name) : handle.executeUpdate(name, { args: [input.payload] })));
          problems.push(`${where(input)}: accepted, answering ${JSON.stringify(answer).slice(0, 300)}`);
        } catch (err) {
          checkRefusal(input, err);
        }
      });
      // A failed workflow task first: it would explain updates that were not refused as they should be.
      expect({ failedWorkflowTasks: await failedWorkflowTasks(workflowId), problems }).toEqual({ failedWorkflowTasks: [], problems: [] });

      // Every signal is processed: counted as rejected, exactly once, and nothing else changed.
      const expectedRejected = before.counters.reportsRejected + signalsSent;
      const expectedObservationsRejected = before.counters.observationsRejected + observationsSent;
      const after = await eventually(
        () => h.breaker.state(accountId),
        (s) => s.counters.reportsRejected >= expectedRejected && s.counters.observationsRejected >= expectedObservationsRejected,
        20_000,
      );
      expect(after.counters.reportsRejected).toBe(expectedRejected);
      // Every forged observation refused; the real watcher's own keep coming (counted apart, not compared).
      expect(after.counters.observationsRejected).toBe(expectedObservationsRejected);
      expect(invariant(after)).toEqual(invariant(before));
      const events = await h.breaker.events(accountId);
      expect(otherThanRejections(events)).toEqual(otherThanRejections(eventsBefore));
      expect(events.length).toBeLessThanOrEqual(200);
      expect(JSON.stringify(events).length).toBeLessThanOrEqual(64 * 1024);
    }
    expect(await failedWorkflowTasks(workflowId)).toEqual([]);
    const fuzzedFor = Date.now() - started;
    expect(totalBytes).toBeLessThan(MAX_TOTAL_BYTES);

    // The guard still protects the account: both venues at the 5.5 % loss price trip it, and the shutdown cancels
    // every order on the paper exchange, normal and conditional.
    h.paper.exchange.setPrice('BTC', BREACH.price);
    await sendUpdate(() => h.breaker.report(accountId, spotReport(BASE_SEQ + 1, BREACH.price)));
    const tripped = await sendUpdate(() => h.breaker.report(accountId, perpReport(BASE_SEQ + 1, BREACH.price)));
    expect(tripped).toMatchObject({ outcome: 'accepted', state: 'Triggered', lossPct: BREACH.lossPct, totalValue: BREACH.totalValue });
    await eventually(() => h.breaker.state(accountId), (s) => s.breaker.name === 'Triggered' && s.breaker.shutdown === 'flat');
    expect(h.paper.exchange.snapshot().openOrders).toEqual({ spot: 0, futures: 0, futuresAlgo: 0, total: 0 });
    expect((await h.breaker.events(accountId)).map((e) => e.type)).toEqual(expect.arrayContaining(['CircuitBreakerTriggered', 'SystemShutdown']));
    expect(await failedWorkflowTasks(workflowId)).toEqual([]);

    const runs = closedRunsChecked.size + 1;
    console.log(
      `fuzz FUZZ_SEED=${SEED}: ${inputs.length} malformed inputs (${Object.entries(sent)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ')}), ${(totalBytes / 1024 / 1024).toFixed(1)} MB, ${runs} runs (continue-as-new), ${updatesRetried} updates sent again after the continue-as-new race; ` +
        `${(fuzzedFor / 1000).toFixed(1)} s fuzzing, ${((Date.now() - started) / 1000).toFixed(1)} s in all`,
    );
    await h.breaker.handle(accountId).terminate('fuzz test done');
  }, 120_000);
});
