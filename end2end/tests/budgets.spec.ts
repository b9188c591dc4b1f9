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
  test.describe(`budgets with JavaScript ${js ? 'on' : 'off'}`, () => {
    test.use({ javaScriptEnabled: js });

    test('an owner sets a workspace budget and a key budget, calls fit or are refused, the usage tab shows the bars', async ({ page }) => {
      const problems = watch(page);
      await signUp(page, uniqueEmail(js ? 'budget' : 'budget-nojs'), js);
      if (js) await hydrated(page);
      await page.getByLabel('Label', { exact: true }).fill('Mock provider');
      await page.getByLabel('Kind').selectOption('openai_compatible');
      await page.getByLabel('Base URL').first().fill(process.env.MOCK_UPSTREAM_URL!);
      await page.getByLabel('API key').fill(VALID_KEY);
      await page.getByRole('button', { name: 'Add provider' }).click();
      await expect(page.getByRole('row').filter({ hasText: 'Mock provider' })).toBeVisible();

      await tab(page, js, 'API keys', 'API keys');
      await page.getByLabel('Name').fill('budgeted');
      await page.getByRole('button', { name: 'Create key' }).click();
      const secret = (await page.getByTestId('new-key').textContent())!;
      expect(secret).toMatch(/^pk_/);

      // The workspace budget, in workspace settings. A wrong figure gets a readable message.
      await tab(page, js, 'Workspaces', 'Workspaces');
      await page.getByLabel('Dollar limit').fill('lots');
      await page.getByRole('button', { name: 'Save budget' }).click();
      await expect(page.getByRole('alert')).toContainText('The dollar limit must be a number');
      await page.getByLabel('Dollar limit').fill('5');
      await page.getByLabel('Allow models with no known price').check();
      await page.getByRole('button', { name: 'Save budget' }).click();
      await expect(page.getByRole('progressbar', { name: 'Workspace budget: $5.00 per month' })).toBeVisible();

      // The key's own budget, in the keys tab.
      await tab(page, js, 'API keys', 'API keys');
      const row = page.getByRole('row').filter({ hasText: 'budgeted' });
      await row.getByText('Budget', { exact: true }).click();
      await row.getByLabel('Token limit').fill('1000');
      await row.getByLabel('Allow models with no known price').check();
      await row.getByRole('button', { name: 'Save budget' }).click();
      await expect(page.getByRole('row').filter({ hasText: 'budgeted' })).toContainText('1000 tokens per month');

      // A call that fits is answered; one whose worst case would pass the key's limit is refused.
      const call = (maxTokens: number) =>
        page.request.post(`${baseUrl()}/v1/chat/completions`, {
          headers: { authorization: `Bearer ${secret}` },
          data: { model: 'mock-small', max_tokens: maxTokens, messages: [{ role: 'user', content: 'hi' }] },
        });
      expect((await call(16)).status()).toBe(200);
      const refused = await call(5000);
      expect(refused.status()).toBe(429);
      const error = (await refused.json()).error;
      expect(error.type).toBe('insufficient_quota');
      expect(error.message).toContain("API key's budget");

      // The usage tab: both budgets, the key's with the 18 tokens the call used.
      await tab(page, js, 'Usage', 'Usage');
      const budgets = page.getByRole('region', { name: 'Budgets' });
      await expect(budgets.getByRole('progressbar')).toHaveCount(2);
      await expect(async () => {
        await page.reload();
        await expect(budgets).toContainText('18 tokens used, 0 reserved, 982 left', { timeout: 1000 });
      }).toPass({ timeout: 15_000 });
      await expect(budgets).toContainText('$0.00 spent, $0.00 reserved, $5.00 left');

      // The one refusal this journey asked for (a 400 from the server function, which the browser
      // also logs) is expected; nothing else may fail.
      const expected = (p: string) =>
        p === 'server function /fn/set_budget answered 400' || (p.startsWith('console error: Failed to load resource') && p.includes('/fn/set_budget'));
      expect(problems.filter((p) => !expected(p))).toEqual([]);
    });
  });
}
