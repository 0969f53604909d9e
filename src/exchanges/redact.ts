/**
 * What must never leave the worker in an error message: request signatures and API keys. ccxt puts the whole signed
 * URL in its errors (`GET https://api.binance.com/api/v3/account?timestamp=…&signature=…`). Binance signs with
 * HMAC-SHA256 (hex), Ed25519 or RSA (base64, URL-encoded in the query: `%2B`, `%2F`, `%3D`), so a signature is
 * everything up to the next delimiter, not only hex digits. A signature is replayable within `recvWindow`, and
 * messages end up in history, state, events and alerts.
 */
export function redactRequestSecrets(text: string): string {
  return text
    .replace(/(signature["']?\s*[=:]\s*["']?)[^&\s"',}]+/gi, '$1<redacted>')
    .replace(/(X-MBX-APIKEY['"]?\s*[:=]\s*['"]?)[^'",\s}]+/gi, '$1<redacted>');
}
