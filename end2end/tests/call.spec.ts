import { test, expect } from '@playwright/test';
import { VALID_KEY } from '../mock-upstream';
import { baseUrl, hydrated, signUp, uniqueEmail, watch } from './helpers';

// One call's whole story, opened from the request log with JavaScript on and off: its steps
// unfold in the log's row, and its own page shows the attempt, the provider, the outcome and the
// headers Perpetuo added, under the id the client got in `x-request-id`.
for (const js of [true, false]) {
  test.describe(`a call's page, JavaScript ${js ? 'on' : 'off'}`, () => {
    test.use({ javaScriptEnabled: js });

    test('open a call from the request log and see its attempts', async ({ page }) => {
      const problems = js ? watch(page) : [];
      await signUp(page, uniqueEmail(`call-${js ? 'js' : 'nojs'}`), js);
      if (js) await hydrated(page);
      await page.getByLabel('Label', { exact: true }).fill('Local');
      await page.getByLabel('Kind').selectOption('openai_compatible');
      await page.getByLabel('Base URL').first().fill(process.env.MOCK_UPSTREAM_URL!);
      await page.getByLabel('API key').fill(VALID_KEY);
      await page.getByRole('button', { name: 'Add provider' }).click();
      await expect(page.getByRole('row').filter({ hasText: 'Local' })).toBeVisible();
      await page.getByRole('link', { name: 'API keys' }).click();
      await page.getByLabel('Name').fill('story-key');
      await page.getByRole('button', { name: 'Create key' }).click();
      const secret = (await page.getByTestId('new-key').textContent())!.trim();
      const answer = await page.request.post(`${baseUrl()}/v1/chat/completions`, {
        headers: { authorization: `Bearer ${secret}` },
        data: { model: 'mock-small', messages: [{ role: 'user', content: 'hi' }] },
      });
      expect(answer.status()).toBe(200);
      const id = answer.headers()['x-request-id'];
      expect(id).toMatch(/^req_[0-9a-z]{20}$/);

      // Records are written within a fraction of a second: reload until the row is there (a
      // click on the tab it is already on would not ask the server again).
      const log = page.getByRole('table', { name: 'Request log' });
      await page.getByRole('navigation', { name: 'Dashboard' }).getByRole('link', { name: 'Usage' }).click();
      await expect(page).toHaveURL(/\/usage$/);
      await expect(async () => {
        await page.reload();
        await expect(log.getByRole('row').filter({ hasText: 'mock-small' })).toHaveCount(1, { timeout: 1000 });
      }).toPass({ timeout: 15_000 });
      if (js) await hydrated(page);
      await log.getByRole('button', { name: `Steps of ${id}` }).or(log.getByLabel(`Steps of ${id}`)).click();
      await page.getByRole('link', { name: `Call ${id}` }).click();
      await expect(page).toHaveURL(new RegExp(`/usage/requests/${id}$`));
      await expect(page.getByRole('heading', { name: `Call ${id}` })).toBeVisible();
      const steps = page.getByRole('table', { name: 'Steps' });
      await expect(steps.getByRole('row')).toHaveCount(2);
      const attempt = steps.getByRole('row').nth(1);
      await expect(attempt).toContainText('Local');
      await expect(attempt).toContainText('openai_compatible');
      await expect(attempt).toContainText('answered');
      await expect(page.getByRole('definition').filter({ hasText: 'x-request-id' })).toContainText(`x-request-id: ${id}`);
      await expect(page.getByRole('definition').filter({ hasText: 'as the provider reported them' })).toBeVisible();
      expect(problems).toEqual([]);
    });
  });
}
