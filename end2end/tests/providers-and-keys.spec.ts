import { test, expect } from '@playwright/test';
import { VALID_KEY } from '../mock-upstream';
import { baseUrl, hydrated, signUp, uniqueEmail } from './helpers';

test('add a provider, test it, create an API key, see it once, revoke it', async ({ page }) => {
  await signUp(page, uniqueEmail('prov'));
  await hydrated(page);

  // Add a provider pointing at the mock upstream.
  await page.getByLabel('Label', { exact: true }).fill('Mock provider');
  await page.getByLabel('Kind').selectOption('openai_compatible');
  await page.getByLabel('Base URL').first().fill(process.env.MOCK_UPSTREAM_URL!);
  await page.getByLabel('API key').fill(VALID_KEY);
  await page.getByRole('button', { name: 'Add provider' }).click();
  const row = page.getByRole('row').filter({ hasText: 'Mock provider' });
  await expect(row).toBeVisible();
  await expect(row).toContainText('••••0001');
  await expect(page.locator('body')).not.toContainText(VALID_KEY);
  // The form is cleared: the key does not linger in the page.
  await expect(page.getByLabel('API key', { exact: true })).toHaveValue('');

  // Give it a model alias through its edit form: an Anthropic model name it will serve.
  await row.getByText('Edit Mock provider').click();
  await row.getByLabel('Model aliases').fill('claude-sonnet-* = mock-small');
  await row.getByRole('button', { name: 'Save' }).click();
  await expect(row.getByTestId('aliases')).toHaveText('aliases: claude-sonnet-* → mock-small');

  // Test it: the mock lists two models.
  await page.getByRole('button', { name: 'Test Mock provider' }).click();
  await expect(page.getByTestId('test-result')).toHaveText('Connected: the provider lists 2 models.');

  // Create an API key: shown once.
  await page.getByRole('link', { name: 'API keys' }).click();
  await expect(page).toHaveURL(/\/keys$/);
  await page.getByLabel('Name').fill('e2e-key');
  await page.getByRole('button', { name: 'Create key' }).click();
  const token = page.getByTestId('new-key');
  await expect(token).toHaveText(/^pk_[0-9A-Za-z]{43}$/);
  const secret = (await token.textContent())!;
  const keyRow = page.getByRole('row').filter({ hasText: 'e2e-key' });
  await expect(keyRow).toContainText('Active');

  // The alias serves an Anthropic model name from the OpenAI-compatible mock.
  const aliased = await page.request.post(`${baseUrl()}/v1/messages`, {
    headers: { 'x-api-key': secret },
    data: { model: 'claude-sonnet-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] },
  });
  expect(aliased.status()).toBe(200);
  expect((await aliased.json()).model).toBe('claude-sonnet-4-5');

  // Never again: a reload shows the key's preview, not the token.
  await page.reload();
  await hydrated(page);
  await expect(page.getByTestId('new-key')).toHaveCount(0);
  await expect(page.locator('body')).not.toContainText(secret);
  await expect(keyRow).toContainText(secret.slice(0, 8));

  // Revoke it, and the gateway refuses it at once.
  await page.getByRole('button', { name: 'Revoke e2e-key' }).click();
  await expect(keyRow).toContainText('Revoked');
  const response = await page.request.post(`${baseUrl()}/v1/chat/completions`, {
    headers: { authorization: `Bearer ${secret}` },
    data: { model: 'mock-small', messages: [{ role: 'user', content: 'hi' }] },
  });
  expect(response.status()).toBe(401);
});
