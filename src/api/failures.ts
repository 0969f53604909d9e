/**
 * Failure types raised by the guard's activities. Operators see these names in the `state` query, the guard's
 * events and the Temporal UI. Kept free of imports so that workflow code can use them.
 */
export const VenueFailureType = {
  /** Network, timeout, rate limit, venue maintenance: retried with backoff. */
  Unavailable: 'VenueUnavailable',
  /** Bad key, revoked key, missing permission, suspended account: never retried automatically; raises an alert. */
  AuthFailed: 'VenueAuthFailed',
  /** The venue understood and refused the request (bad symbol, invalid order): retrying will not help. */
  Rejected: 'VenueRejected',
  /** A 200 answer whose body is not what the venue documents: retried, never trusted as "zero". */
  MalformedResponse: 'VenueMalformedResponse',
  /**
   * The worker's venue configuration binds this venue to another account (or does not have it): never retried,
   * raises an alert. A guard acts only on the venues bound to its own account.
   */
  NotBound: 'VenueNotBound',
  /**
   * The venue refuses to serve this worker at all: HTTP 451 (restricted location) or 403 (blocked by its WAF).
   * Never retried automatically; raises an alert: the worker must run from elsewhere or the block be lifted.
   */
  Refused: 'VenueRefused',
  /**
   * The venue refused the request's timestamp (-1021) even after the worker resynchronised with the venue's server
   * time and retried once: the worker's clock is skewed or drifting beyond what a resync fixes. Never retried
   * automatically; raises an alert (the guard sweeps and reads again later, resynchronising each time).
   */
  ClockSkew: 'VenueClockSkew',
} as const;
export type VenueFailureType = (typeof VenueFailureType)[keyof typeof VenueFailureType];
