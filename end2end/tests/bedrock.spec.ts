import { test, expect } from '@playwright/test';
import { AWS_REGION, awsAccessKey } from '../mock-upstream';
import { baseUrl, hydrated, signUp, uniqueEmail, watch } from './helpers';

// An Amazon Bedrock provider (Claude) added from the dashboard, with JavaScript on and off: IAM
// credentials pasted in the key field as JSON, a region; "Test" lists the foundation models with
// a SigV4-signed request (the mock recomputes the signature), and a Messages call through a key
// is served by InvokeModel.
for (const js of [true, false]) {
  test.describe(`Amazon Bedrock, JavaScript ${js ? 'on' : 'off'}`, () => {
    test.use({ javaScriptEnabled: js });

    test('add a Bedrock provider, test it, call Claude on it', async ({ page }) => {
      const problems = js ? watch(page) : [];
      await signUp(page, uniqueEmail(`bedrock-${js ? 'js' : 'nojs'}`), js);
      if (js) await hydrated(page);
      const root = process.env.MOCK_UPSTREAM_URL!.replace(/\/v1$/, '');
      const label = `Bedrock ${js ? 'js' : 'nojs'}`;
      await page.getByLabel('Label', { exact: true }).fill(label);
      await page.getByLabel('Kind').selectOption('bedrock');
      await page.getByLabel('Base URL').first().fill(root);
      await page.getByLabel('Region (Google Vertex AI, Amazon Bedrock)').first().fill(AWS_REGION);
      await page.getByLabel('API key').fill(awsAccessKey());
      await page.getByRole('button', { name: 'Add provider' }).click();
      const row = page.getByRole('row').filter({ hasText: label });
      await expect(row).toBeVisible();
      await expect(row).toContainText('Amazon Bedrock (Claude)');
      await expect(row).toContainText('••••0001');
      await expect(row).not.toContainText('secret');

      await page.getByRole('button', { name: `Test ${label}` }).click();
      await expect(page.getByTestId('test-result')).toHaveText('Connected: the provider lists 2 models.');

      await page.getByRole('link', { name: 'API keys' }).click();
      await page.getByLabel('Name').fill('bedrock-key');
      await page.getByRole('button', { name: 'Create key' }).click();
      const secret = (await page.getByTestId('new-key').textContent())!.trim();
      const answer = await page.request.post(`${baseUrl()}/v1/messages`, {
        headers: { 'x-api-key': secret, 'anthropic-version': '2023-06-01' },
        data: { model: 'eu.anthropic.claude-sonnet-4-5-20250929-v1:0', max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] },
      });
      expect(answer.status()).toBe(200);
      expect(answer.headers()['x-perpetuo-provider']).toBe(label);
      expect((await answer.json()).content[0].text).toBe('Hello from Bedrock');
      expect(problems).toEqual([]);
    });
  });
}
