import { test, expect } from '@playwright/test';
import { VALID_KEY } from '../mock-upstream';
import { baseUrl, hydrated, signUp, uniqueEmail, watch } from './helpers';

// An Azure OpenAI provider added from the dashboard, with JavaScript on and off: its resource
// endpoint, API version and a deployment in the allow-list; "Test" reaches the resource; a call
// through a key is served by the deployment.
for (const js of [true, false]) {
  test.describe(`Azure OpenAI, JavaScript ${js ? 'on' : 'off'}`, () => {
    test.use({ javaScriptEnabled: js });

    test('add an Azure OpenAI provider, test it, call its deployment', async ({ page }) => {
      const problems = js ? watch(page) : [];
      await signUp(page, uniqueEmail(`azure-${js ? 'js' : 'nojs'}`), js);
      if (js) await hydrated(page);
      const resource = process.env.MOCK_UPSTREAM_URL!.replace(/\/v1$/, '');
      const label = `Azure ${js ? 'js' : 'nojs'}`;
      await page.getByLabel('Label', { exact: true }).fill(label);
      await page.getByLabel('Kind').selectOption('azure');
      await page.getByLabel('Base URL').first().fill(resource);
      await page.getByLabel('API version (Azure OpenAI)').first().fill('2024-10-21');
      await page.getByLabel('API key').fill(VALID_KEY);
      await page.getByLabel('Model allow-list').first().fill('gpt-4o-mini');
      await page.getByRole('button', { name: 'Add provider' }).click();
      const row = page.getByRole('row').filter({ hasText: label });
      await expect(row).toBeVisible();
      await expect(row).toContainText('Azure OpenAI');

      await page.getByRole('button', { name: `Test ${label}` }).click();
      await expect(page.getByTestId('test-result')).toHaveText('Connected: the provider lists 2 models.');

      await page.getByRole('link', { name: 'API keys' }).click();
      await page.getByLabel('Name').fill('azure-key');
      await page.getByRole('button', { name: 'Create key' }).click();
      const secret = (await page.getByTestId('new-key').textContent())!.trim();
      const answer = await page.request.post(`${baseUrl()}/v1/chat/completions`, {
        headers: { authorization: `Bearer ${secret}` },
        data: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] },
      });
      expect(answer.status()).toBe(200);
      expect(answer.headers()['x-perpetuo-provider']).toBe(label);
      expect(problems).toEqual([]);
    });
  });
}
