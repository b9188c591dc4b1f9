import { test, expect, type Page } from '@playwright/test';
import { VALID_KEY } from '../mock-upstream';
import { baseUrl, hydrated, signUp, uniqueEmail, watch } from './helpers';

/** Clicks a tab in the header and waits for its page (hydrated, with JavaScript on). */
async function tab(page: Page, js: boolean, name: string, heading: string) {
  await page.getByRole('navigation', { name: 'Dashboard' }).getByRole('link', { name }).click();
  await expect(page.getByRole('heading', { level: 1, name: heading })).toBeVisible();
  if (js) await hydrated(page);
}

for (const js of [true, false]) {
  test.describe(`limits with JavaScript ${js ? 'on' : 'off'}`, () => {
    test.use({ javaScriptEnabled: js });

    test('an owner sets token and in-flight limits for the workspace, a key and a provider; a call over the key\'s is refused', async ({ page }) => {
      const problems = watch(page);
      await signUp(page, uniqueEmail(js ? 'limits' : 'limits-nojs'), js);
      if (js) await hydrated(page);
      await page.getByLabel('Label', { exact: true }).fill('Mock provider');
      await page.getByLabel('Kind').selectOption('openai_compatible');
      await page.getByLabel('Base URL').first().fill(process.env.MOCK_UPSTREAM_URL!);
      await page.getByLabel('API key').fill(VALID_KEY);
      await page.getByRole('button', { name: 'Add provider' }).click();
      const provider = page.getByRole('row').filter({ hasText: 'Mock provider' });
      await expect(provider).toBeVisible();

      // The provider's share of its account: three calls in flight.
      await provider.getByText('Limits', { exact: true }).click();
      await provider.getByLabel('Calls in flight at once').fill('3');
      await provider.getByRole('button', { name: 'Save limits' }).click();
      await expect(page.getByRole('row').filter({ hasText: 'Mock provider' }).getByTestId('provider-limits')).toHaveText("Perpetuo's limits: 3 in flight");

      await tab(page, js, 'API keys', 'API keys');
      await page.getByLabel('Name').fill('limited');
      await page.getByRole('button', { name: 'Create key' }).click();
      const secret = (await page.getByTestId('new-key').textContent())!;
      expect(secret).toMatch(/^pk_/);

      // The workspace's limits, in workspace settings. A figure past the maximum gets a message.
      await tab(page, js, 'Workspaces', 'Workspaces');
      await page.getByLabel('Tokens a minute (input and output)').fill('2000000000');
      await page.getByRole('button', { name: 'Save limits' }).click();
      await expect(page.getByRole('alert')).toContainText('must be from 1 to 1000000000');
      await page.getByLabel('Tokens a minute (input and output)').fill('');
      await page.getByLabel('Input tokens a minute').fill('500000');
      await page.getByLabel('Calls in flight at once').fill('8');
      await page.getByRole('button', { name: 'Save limits' }).click();
      await expect(page.getByTestId('workspace-limits')).toContainText('500000 input tokens/min, 8 in flight');

      // The key's own: 100 output tokens a minute.
      await tab(page, js, 'API keys', 'API keys');
      const row = page.getByRole('row').filter({ hasText: 'limited' });
      await row.getByText('Limits', { exact: true }).click();
      await row.getByLabel('Output tokens a minute').fill('100');
      await row.getByRole('button', { name: 'Save limits' }).click();
      await expect(page.getByRole('row').filter({ hasText: 'limited' })).toContainText('100 output tokens/min');

      // A call that may write 60 fits (and says where the limit stands); one that may write more
      // than the limit never does.
      const call = (maxTokens: number) =>
        page.request.post(`${baseUrl()}/v1/chat/completions`, {
          headers: { authorization: `Bearer ${secret}` },
          data: { model: 'mock-small', max_tokens: maxTokens, messages: [{ role: 'user', content: 'hi' }] },
        });
      const answered = await call(60);
      expect(answered.status()).toBe(200);
      expect(answered.headers()['x-ratelimit-limit-tokens']).toBe('100');
      const refused = await call(101);
      expect(refused.status()).toBe(429);
      expect(Number(refused.headers()['retry-after'])).toBeGreaterThan(0);
      const error = (await refused.json()).error;
      expect(error.code).toBe('rate_limit_exceeded');
      expect(error.message).toContain('output tokens');

      // Removed, the key has none (the page loaded afresh: its forms closed).
      await page.reload();
      if (js) await hydrated(page);
      const again = page.getByRole('row').filter({ hasText: 'limited' });
      await again.getByText('Limits', { exact: true }).click();
      await again.getByRole('button', { name: 'Remove limits' }).click();
      await expect(page.getByRole('row').filter({ hasText: 'limited' })).not.toContainText('output tokens/min');

      // The one refusal this journey asked for (a 400 from the server function, which the browser
      // also logs) is expected; nothing else may fail.
      const expected = (p: string) =>
        p === 'server function /fn/set_limits answered 400' || (p.startsWith('console error: Failed to load resource') && p.includes('/fn/set_limits'));
      expect(problems.filter((p) => !expected(p))).toEqual([]);
    });
  });
}
