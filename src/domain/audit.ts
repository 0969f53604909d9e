/**
 * What the guard writes to its audit log (src/audit/log.ts, outside Temporal): one entry per risk event and per
 * operator action, accepted or refused, with who, which key, what, why and the valuation behind it. Pure: the guard
 * decides what to record; the `appendAudit` activity writes it, idempotently by `eventId`.
 */
import type { GuardEvent } from './guard';
import type { DecimalString } from './money';

/** Entry kinds, as the audit log and `breaker audit show` name them. */
export type AuditKind =
  | 'CircuitBreakerTriggered'
  | 'CircuitBreakerReset'
  | 'BreakerDisabled'
  | 'BreakerEnabled'
  | 'Warning'
  | 'SystemShutdown'
  | 'OperatorAction'
  | 'OperatorActionRefused'
  | 'ReportRefused'
  | 'TripRecalled'
  | 'GuardConfigured';

export interface AuditEntry {
  /** Unique for ever: the id of the run that wrote it and a counter. A retried write never duplicates it. */
  eventId: string;
  kind: AuditKind;
  at: string;
  actor: { operator?: string; keyId?: string; approvedBy?: string; bot?: string } | null;
  what: string;
  why: string | null;
  /** The valuation behind it; a figure unknown at the time is left out. */
  valuation: { totalValue?: DecimalString; lossPct?: DecimalString } | null;
  data: Record<string, string | number | boolean | null>;
}

/** A valuation for an entry: the figures known, or null when neither is. */
export function auditValuation(totalValue: DecimalString | null | undefined, lossPct: DecimalString | null | undefined): AuditEntry['valuation'] {
  if (totalValue == null && lossPct == null) return null;
  return { ...(totalValue != null ? { totalValue } : {}), ...(lossPct != null ? { lossPct } : {}) };
}

/** The audit entry an event becomes, without its id; undefined for events the audit log does not keep. */
export function auditEntryOf(event: GuardEvent, valuation: AuditEntry['valuation']): Omit<AuditEntry, 'eventId'> | undefined {
  switch (event.type) {
    case 'CircuitBreakerTriggered':
      return {
        kind: event.cause === 'recalled' ? 'TripRecalled' : 'CircuitBreakerTriggered',
        at: event.at,
        actor: event.operator !== undefined ? { operator: event.operator } : null,
        what: `tripped (${event.cause})`,
        why: event.reason,
        valuation: auditValuation(event.totalValue, event.lossPct),
        data: { cause: event.cause },
      };
    case 'CircuitBreakerReset':
      return { kind: 'CircuitBreakerReset', at: event.at, actor: { operator: event.operator }, what: 'reset', why: event.reason, valuation, data: {} };
    case 'BreakerDisabled':
      return { kind: 'BreakerDisabled', at: event.at, actor: { operator: event.operator }, what: 'disabled', why: event.reason, valuation, data: {} };
    case 'BreakerEnabled':
      return { kind: 'BreakerEnabled', at: event.at, actor: { operator: event.operator }, what: 'enabled', why: event.reason, valuation, data: {} };
    case 'WarningTriggered':
      return { kind: 'Warning', at: event.at, actor: null, what: `warning (${event.cause})`, why: event.reason, valuation: auditValuation(event.totalValue, event.lossPct), data: { cause: event.cause } };
    case 'WarningCleared':
      return { kind: 'Warning', at: event.at, actor: null, what: 'warning cleared', why: null, valuation: auditValuation(event.totalValue, event.lossPct), data: {} };
    case 'SystemShutdown':
      return { kind: 'SystemShutdown', at: event.at, actor: null, what: 'every venue confirmed flat', why: null, valuation, data: {} };
    case 'OperatorActionAccepted':
      return {
        kind: 'OperatorAction',
        at: event.at,
        actor: { operator: event.operator, keyId: event.keyId, ...(event.approvedBy ? { approvedBy: event.approvedBy } : {}) },
        what: event.action,
        why: event.reason,
        valuation,
        data: { nonce: event.nonce, ...(event.args ? { args: event.args } : {}) },
      };
    case 'ApprovalRequested':
      return {
        kind: 'OperatorAction',
        at: event.at,
        actor: { operator: event.operator, keyId: event.keyId },
        what: `${event.action} requested, awaiting a second operator`,
        why: event.reason,
        valuation,
        data: { nonce: event.nonce, requestId: event.requestId, expiresAt: event.expiresAt },
      };
    case 'GuardConfigured':
      return {
        kind: 'GuardConfigured',
        at: event.at,
        actor: event.operator !== null ? { operator: event.operator, ...(event.keyId ? { keyId: event.keyId } : {}) } : null,
        what: event.operator !== null ? 'config changed (signed configure)' : 'first config of the account',
        why: event.reason,
        valuation,
        data: { config: event.config },
      };
    case 'OperatorActionRefused':
      return { kind: 'OperatorActionRefused', at: event.at, actor: { operator: event.operator }, what: event.action, why: event.error, valuation, data: {} };
    default:
      return undefined;
  }
}
