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
} as const;
export type VenueFailureType = (typeof VenueFailureType)[keyof typeof VenueFailureType];
