/**
 * Alerts carry account names, losses and venue errors: the webhook is HTTPS, or plain HTTP only to loopback, and a
 * worker with any other refuses to start (not at the first alert, which would be a trip).
 */
import { alertWebhookProblem, createActivities } from '../../src/activities';

describe('the alert webhook URL', () => {
  it.each([
    ['https://hooks.slack.com/services/T000/B000/XXXX'],
    ['https://events.pagerduty.com/v2/enqueue'],
    ['http://127.0.0.1:8080/alerts'],
    ['http://localhost:9000/alerts'],
    ['http://[::1]:9000/alerts'],
  ])('accepts %s', (url) => {
    expect(alertWebhookProblem(url)).toBeUndefined();
  });

  it.each([
    ['plain http to another host', 'http://alerts.example.com/hook', 'ALERT_WEBHOOK_URL: must be https (http only to a loopback address), got http://alerts.example.com'],
    ['plain http to a private address', 'http://10.0.0.5/hook', 'got http://10.0.0.5'],
    ['another scheme', 'ftp://example.com/x', 'got ftp://example.com'],
    ['credentials in the URL', 'https://user:pass@example.com/hook', 'must not carry credentials'],
    ['not a URL', 'alerts please', 'ALERT_WEBHOOK_URL: not a URL'],
  ])('refuses %s', (_label, url, message) => {
    expect(alertWebhookProblem(url)).toContain(message);
  });

  it('a worker with a refused webhook does not start, and the message does not echo credentials', () => {
    expect(() => createActivities({ venues: new Map(), alertWebhookUrl: 'http://alerts.example.com/hook' })).toThrow('ALERT_WEBHOOK_URL: must be https');
    expect(() => createActivities({ venues: new Map(), alertWebhookUrl: 'https://user:s3cret@example.com/hook' })).toThrow(/^(?!.*s3cret)/);
    expect(() => createActivities({ venues: new Map(), alertWebhookUrl: 'https://user:s3cret@example.com/hook' })).toThrow('must not carry credentials');
    expect(() => createActivities({ venues: new Map(), alertWebhookUrl: 'https://hooks.example.com/x' })).not.toThrow();
  });
});
