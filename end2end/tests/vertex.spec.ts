import { test, expect } from '@playwright/test';
import { serviceAccount } from '../mock-upstream';
import { baseUrl, hydrated, signUp, uniqueEmail, watch } from './helpers';

// Google Vertex AI providers (Claude and Gemini) added from the dashboard, with JavaScript on and off: the
// service account's JSON key pasted in the key field, a region; "Test" mints a token at the
// mock's token endpoint (which verifies the signed assertion) and lists the publisher's models;
// a Messages call through a key is served by rawPredict (Claude) or generateContent (Gemini).
const kinds = [
  { kind: 'vertex', name: 'Google Vertex AI (Claude)' },
  { kind: 'vertex_gemini', name: 'Google Vertex AI (Gemini)' },
];
for (const js of [true, false]) for (const { kind, name } of kinds) {
  test.describe(`${name}, JavaScript ${js ? 'on' : 'off'}`, () => {
    test.use({ javaScriptEnabled: js });

    test(`add a ${kind} provider, test it, call a model on it`, async ({ page }) => {
      const problems = js ? watch(page) : [];
      await signUp(page, uniqueEmail(`${kind}-${js ? 'js' : 'nojs'}`), js);
      if (js) await hydrated(page);
      const root = process.env.MOCK_UPSTREAM_URL!.replace(/\/v1$/, '');
      const label = `${kind} ${js ? 'js' : 'nojs'}`;
      await page.getByLabel('Label', { exact: true }).fill(label);
      await page.getByLabel('Kind').selectOption(kind);
      await page.getByLabel('Base URL').first().fill(root);
      await page.getByLabel('Region (Google Vertex AI, Amazon Bedrock)').first().fill('us-east5');
      await page.getByLabel('API key').fill(serviceAccount(root));
      await page.getByRole('button', { name: 'Add provider' }).click();
      const row = page.getByRole('row').filter({ hasText: label });
      await expect(row).toBeVisible();
      await expect(row).toContainText(name);
      await expect(row).toContainText('••••abcd');
      await expect(row).not.toContainText('PRIVATE KEY');

      await page.getByRole('button', { name: `Test ${label}` }).click();
      await expect(page.getByTestId('test-result')).toHaveText('Connected: the provider lists 2 models.');

      await page.getByRole('link', { name: 'API keys' }).click();
      await page.getByLabel('Name').fill(`${kind}-key`);
      await page.getByRole('button', { name: 'Create key' }).click();
      const secret = (await page.getByTestId('new-key').textContent())!.trim();
      const model = kind === 'vertex' ? 'claude-sonnet-4-5@20250929' : 'gemini-2.5-flash';
      const answer = await page.request.post(`${baseUrl()}/v1/messages`, {
        headers: { 'x-api-key': secret, 'anthropic-version': '2023-06-01' },
        data: { model, max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] },
      });
      expect(answer.status()).toBe(200);
      expect(answer.headers()['x-perpetuo-provider']).toBe(label);
      expect((await answer.json()).content[0].text).toBe(kind === 'vertex' ? 'Hello from Vertex' : 'Hello from Gemini on Vertex');
      expect(problems).toEqual([]);
    });
  });
}
