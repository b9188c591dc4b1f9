import { test, expect, type Page } from '@playwright/test';
import { hydrated, signUp, uniqueEmail, watch } from './helpers';

/** Clicks a tab in the header and waits for its page (hydrated, with JavaScript on). */
async function tab(page: Page, js: boolean, name: string, heading: string) {
  await page.getByRole('navigation', { name: 'Dashboard' }).getByRole('link', { name }).click();
  await expect(page.getByRole('heading', { level: 1, name: heading })).toBeVisible();
  if (js) await hydrated(page);
}

for (const js of [true, false]) {
  test.describe(`defaults for new keys with JavaScript ${js ? 'on' : 'off'}`, () => {
    test.use({ javaScriptEnabled: js });

    test('an owner sets the budget and limits every new key gets; a key created afterwards has them', async ({ page }) => {
      const problems = watch(page);
      await signUp(page, uniqueEmail(js ? 'defaults' : 'defaults-nojs'), js);
      if (js) await hydrated(page);
      await tab(page, js, 'API keys', 'API keys');
      await expect(page.getByTestId('new-key-defaults')).toHaveText('New keys get: no budget; limits: none.');

      await page.getByText('Budget for new keys', { exact: true }).click();
      await page.getByLabel('Token limit').fill('300');
      await page.getByRole('button', { name: 'Save budget' }).click();
      await expect(page.getByTestId('new-key-defaults')).toContainText('300 tokens per month');

      await page.getByText('Limits for new keys', { exact: true }).click();
      await page.getByLabel('Calls in flight at once').fill('2');
      await page.getByRole('button', { name: 'Save limits' }).click();
      await expect(page.getByTestId('new-key-defaults')).toContainText('2 in flight');

      // A key made now starts with them as its own.
      await page.getByLabel('Name', { exact: true }).fill('after');
      await page.getByRole('button', { name: 'Create key' }).click();
      await expect(page.getByTestId('new-key')).toBeVisible();
      const row = page.getByRole('row').filter({ hasText: 'after' });
      await expect(row).toContainText('300 tokens per month');
      await expect(row).toContainText('2 in flight');
      expect(problems).toEqual([]);
    });
  });
}
