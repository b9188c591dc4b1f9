import { test, expect } from '@playwright/test';
import { VALID_KEY } from '../mock-upstream';
import { baseUrl, hydrated, signUp, uniqueEmail, watch } from './helpers';

// A Gemini provider (Google AI Studio key) added from the dashboard, with JavaScript on and off;
// "Test" lists the mock's models through Gemini's own API; a chat call through a key is
// translated to generateContent and answered.
for (const js of [true, false]) {
  test.describe(`Gemini, JavaScript ${js ? 'on' : 'off'}`, () => {
    test.use({ javaScriptEnabled: js });

    test('add a Gemini provider, test it, call it', async ({ page }) => {
      const problems = js ? watch(page) : [];
      await signUp(page, uniqueEmail(`gemini-${js ? 'js' : 'nojs'}`), js);
      if (js) await hydrated(page);
      const root = process.env.MOCK_UPSTREAM_URL!.replace(/\/v1$/, '');
      const label = `Gemini ${js ? 'js' : 'nojs'}`;
      await page.getByLabel('Label', { exact: true }).fill(label);
      await page.getByLabel('Kind').selectOption('gemini');
      await page.getByLabel('Base URL').first().fill(`${root}/v1beta`);
      await page.getByLabel('API key').fill(VALID_KEY);
      await page.getByRole('button', { name: 'Add provider' }).click();
      const row = page.getByRole('row').filter({ hasText: label });
      await expect(row).toBeVisible();
      await expect(row).toContainText('Google Gemini');

      await page.getByRole('button', { name: `Test ${label}` }).click();
      await expect(page.getByTestId('test-result')).toHaveText('Connected: the provider lists 2 models.');

      await page.getByRole('link', { name: 'API keys' }).click();
      await page.getByLabel('Name').fill('gemini-key');
      await page.getByRole('button', { name: 'Create key' }).click();
      const secret = (await page.getByTestId('new-key').textContent())!.trim();
      const answer = await page.request.post(`${baseUrl()}/v1/chat/completions`, {
        headers: { authorization: `Bearer ${secret}` },
        data: { model: 'gemini-2.5-flash', messages: [{ role: 'user', content: 'hi' }] },
      });
      expect(answer.status()).toBe(200);
      expect(answer.headers()['x-perpetuo-provider']).toBe(label);
      expect((await answer.json()).choices[0].message.content).toBe('Hello from Gemini');
      expect(problems).toEqual([]);
    });
  });
}
