import { test, expect } from '@playwright/test';
import { AWS_REGION, awsAccessKey } from '../mock-upstream';
import { baseUrl, hydrated, signUp, uniqueEmail, watch } from './helpers';

// Amazon Bedrock providers (Claude through InvokeModel, Nova through Converse) added from the
// dashboard, with JavaScript on and off: IAM credentials pasted in the key field as JSON, a
// region; "Test" lists the foundation models with a SigV4-signed request (the mock recomputes
// the signature), and a call through a key is served, signed the same way.
const kinds = [
  { kind: 'bedrock', name: 'Amazon Bedrock (Claude)' },
  { kind: 'bedrock_converse', name: 'Amazon Bedrock (Converse: Nova, Llama, Mistral…)' },
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
      await page.getByLabel('Region (Google Vertex AI, Amazon Bedrock)').first().fill(AWS_REGION);
      await page.getByLabel('API key').fill(awsAccessKey());
      await page.getByRole('button', { name: 'Add provider' }).click();
      const row = page.getByRole('row').filter({ hasText: label });
      await expect(row).toBeVisible();
      await expect(row).toContainText(name);
      await expect(row).toContainText('••••0001');
      await expect(row).not.toContainText('secret');

      await page.getByRole('button', { name: `Test ${label}` }).click();
      await expect(page.getByTestId('test-result')).toHaveText('Connected: the provider lists 2 models.');

      await page.getByRole('link', { name: 'API keys' }).click();
      await page.getByLabel('Name').fill(`${kind}-key`);
      await page.getByRole('button', { name: 'Create key' }).click();
      const secret = (await page.getByTestId('new-key').textContent())!.trim();
      if (kind === 'bedrock') {
        const answer = await page.request.post(`${baseUrl()}/v1/messages`, {
          headers: { 'x-api-key': secret, 'anthropic-version': '2023-06-01' },
          data: { model: 'eu.anthropic.claude-sonnet-4-5-20250929-v1:0', max_tokens: 50, messages: [{ role: 'user', content: 'hi' }] },
        });
        expect(answer.status()).toBe(200);
        expect(answer.headers()['x-perpetuo-provider']).toBe(label);
        expect((await answer.json()).content[0].text).toBe('Hello from Bedrock');
      } else {
        const answer = await page.request.post(`${baseUrl()}/v1/chat/completions`, {
          headers: { authorization: `Bearer ${secret}` },
          data: { model: 'us.amazon.nova-lite-v1:0', messages: [{ role: 'user', content: 'hi' }] },
        });
        expect(answer.status()).toBe(200);
        expect(answer.headers()['x-perpetuo-provider']).toBe(label);
        expect((await answer.json()).choices[0].message.content).toBe('Hello from Nova');
      }
      // The providers tab shows how the call went on this instance.
      await page.getByRole('link', { name: 'Providers' }).click();
      const health = page.getByRole('row').filter({ hasText: label }).getByTestId('provider-health');
      await expect(health).toContainText('This instance, last hour: 1 calls, 0 failed (0%)');
      await expect(health).toContainText('last success');
      expect(problems).toEqual([]);
    });
  });
}
