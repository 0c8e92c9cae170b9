import { test, expect } from '@playwright/test';
import { contentSecurityPolicy } from '../../src/securityHeaders.ts';

/**
 * The app under its Content-Security-Policy: the dev server sends the headers and the page carries
 * the <meta>; the tiny model loads (worker, WebAssembly hashing, shard fetches) and generates with no
 * CSP violation anywhere, while a fetch to a host the policy does not name is refused.
 */

test('the security headers and the CSP <meta> are served, and the app loads and generates with no CSP violation', async ({ page }) => {
  const response = await page.request.get('/');
  const headers = response.headers();
  expect(headers['content-security-policy']).toBe(contentSecurityPolicy({ dev: true, header: true }));
  expect(headers['referrer-policy']).toBe('strict-origin-when-cross-origin');
  expect(headers['x-content-type-options']).toBe('nosniff');
  // The worker's script is served with the policy too (a worker is governed by its own response's CSP).
  const worker = await page.request.get('/src/engine/worker.ts');
  expect(worker.headers()['content-security-policy']).toBe(contentSecurityPolicy({ dev: true, header: true }));

  const problems: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  await page.addInitScript(() => {
    const seen: string[] = ((window as unknown as { cspViolations: string[] }).cspViolations = []);
    // Which policy refused it: the header's (it alone carries frame-ancestors) or the <meta>'s.
    document.addEventListener('securitypolicyviolation', (e) =>
      seen.push(`${e.violatedDirective} ${e.blockedURI} (${e.originalPolicy.includes('frame-ancestors') ? 'header' : 'meta'})`),
    );
  });
  await page.goto('./#view=generate');
  const meta = await page.locator('meta[http-equiv="Content-Security-Policy"]').getAttribute('content');
  expect(meta).toBe(contentSecurityPolicy({ dev: true, header: false }));

  await page.getByRole('combobox', { name: 'Model' }).selectOption('tiny-q4f32_1');
  await page.getByRole('button', { name: /Load model|Reload/ }).click();
  await expect(page.getByTestId('model-status')).toContainText('q4f32_1', { timeout: 120_000 });
  await page.getByTestId('gen-prompt').fill('Q: What is 2 + 3?\nA:');
  await page.getByLabel('Max new tokens').fill('4');
  await page.getByRole('button', { name: 'Generate', exact: true }).click();
  await expect(page.getByTestId('gen-stats')).toContainText(/^4 tokens/, { timeout: 120_000 });
  expect(await page.evaluate(() => (window as unknown as { cspViolations: string[] }).cspViolations)).toEqual([]);
  expect(problems).toEqual([]);

  // Both policies are in force: a host they do not name is refused by each, before any request.
  const blocked = await page.evaluate(async () => {
    const ok = await fetch('https://attacker.example/x').then(
      () => true,
      () => false,
    );
    await new Promise((r) => setTimeout(r, 100));
    return { ok, violations: (window as unknown as { cspViolations: string[] }).cspViolations };
  });
  expect(blocked.ok).toBe(false);
  expect(blocked.violations.sort()).toEqual(['connect-src https://attacker.example/x (header)', 'connect-src https://attacker.example/x (meta)']);
});
