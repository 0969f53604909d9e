/**
 * What the decider's unit tests share: a clock, a config, a way to feed messages in order, and readings of the
 * commands and events. Pure: no Temporal, no clock of its own.
 */
import { AccountConfigInput, parseAccountConfig } from '../../src/domain/config';
import { Decision, GuardCommand, GuardMessage, GuardState, decide } from '../../src/domain/guard';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
/** The time `seconds` after the tests' epoch, as the decider's messages carry it. */
export const at = (seconds: number) => new Date(T0 + seconds * 1000).toISOString();

/** A two-venue account ("spot", "perp") of 10,000, with `extra` on top. */
export function configOf(extra: Partial<AccountConfigInput> = {}) {
  const parsed = parseAccountConfig({ accountId: 'acct', initialCapital: '10000', venues: ['spot', 'perp'], ...extra });
  if (!parsed.ok) throw new Error(parsed.error);
  return parsed.value;
}

/** Feeds messages in order; returns the final state and everything decided along the way. */
export function run(state: GuardState, messages: GuardMessage[]) {
  const decisions: Decision[] = [];
  for (const m of messages) {
    const d = decide(state, m);
    decisions.push(d);
    state = d.state;
  }
  return { state, decisions, commands: decisions.flatMap((d) => d.commands), last: decisions[decisions.length - 1]! };
}

export const types = (commands: GuardCommand[]) => commands.map((c) => c.type);
export const eventTypes = (s: GuardState) => s.events.map((e) => e.type);
/** A venue reading holding only USDT. */
export const reading = (venue: string, usdt: string) => ({ venue, balances: { USDT: usdt }, prices: {}, positions: [], asOf: at(0) });
