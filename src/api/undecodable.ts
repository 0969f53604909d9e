/**
 * What the guard's payload converter yields for a payload it cannot decode (an unknown encoding such as
 * `json/protobuf`, or JSON that `JSON.parse` refuses, e.g. Python's `NaN`), instead of throwing. A throw while
 * decoding a signal fails the workflow task, and every later task, for ever; this value lets the handler record the
 * signal as rejected and an update's validator refuse it with a clear, non-retryable error.
 * Kept free of imports so that workflow code, the payload converter and tests can all use it.
 */
export class UndecodablePayload {
  constructor(
    /** Why decoding failed, e.g. `unknown encoding "json/protobuf"`; clipped by the converter. */
    readonly error: string,
  ) {}
}

export function isUndecodable(value: unknown): value is UndecodablePayload {
  return value instanceof UndecodablePayload;
}
