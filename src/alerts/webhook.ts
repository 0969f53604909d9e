/**
 * The alert webhook, for the guards' alerts (src/activities/index.ts `sendAlert`) and the watchdog's
 * (src/watchdog/watchdog.ts): one set of rules, so that the fail-safe pages the way the guards do. Light on imports:
 * the watchdog and the CLI load it without ccxt.
 */
import { isLoopbackHost } from '../exchanges/venues';

/**
 * Why an alert webhook URL may not be used, or undefined when it may: alerts carry account names, losses and venue
 * errors, so they travel over HTTPS, except to a loopback address (a local relay or a test).
 */
export function alertWebhookProblem(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return 'ALERT_WEBHOOK_URL: not a URL';
  }
  if (parsed.username || parsed.password) return 'ALERT_WEBHOOK_URL: must not carry credentials in the URL (use a token path or header-free webhook URL)';
  if (parsed.protocol === 'https:') return undefined;
  if (parsed.protocol === 'http:' && isLoopbackHost(parsed.hostname)) return undefined;
  return `ALERT_WEBHOOK_URL: must be https (http only to a loopback address), got ${parsed.protocol}//${parsed.hostname}`;
}

/**
 * POSTs `body` as JSON with an `Idempotency-Key`: no redirects followed (a webhook that redirects is misconfigured or
 * hijacked), given up after 5 s.
 * @throws Error when the webhook does not answer 2xx
 */
export async function postToWebhook(url: string, idempotencyKey: string, body: unknown): Promise<void> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5_000),
    redirect: 'manual',
  });
  if (!response.ok) throw new Error(`alert webhook answered ${response.status}`);
}
