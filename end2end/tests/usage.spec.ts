import { test, expect } from '@playwright/test';
import { VALID_KEY } from '../mock-upstream';
import { baseUrl, hydrated, signUp, uniqueEmail } from './helpers';

test('the usage tab shows the calls just made, and a chart', async ({ page }) => {
  await signUp(page, uniqueEmail('usage'));
  await hydrated(page);
  await page.getByLabel('Label', { exact: true }).fill('Mock');
  await page.getByLabel('Kind').selectOption('openai_compatible');
  await page.getByLabel('Base URL').first().fill(process.env.MOCK_UPSTREAM_URL!);
  await page.getByLabel('API key').fill(VALID_KEY);
  await page.getByRole('button', { name: 'Add provider' }).click();
  await expect(page.getByRole('row').filter({ hasText: 'Mock' })).toBeVisible();

  await page.getByRole('link', { name: 'API keys' }).click();
  await page.getByLabel('Name').fill('usage-key');
  await page.getByRole('button', { name: 'Create key' }).click();
  const secret = (await page.getByTestId('new-key').textContent())!;

  for (const stream of [false, true]) {
    const response = await page.request.post(`${baseUrl()}/v1/chat/completions`, {
      headers: { authorization: `Bearer ${secret}` },
      data: { model: 'mock-small', stream, messages: [{ role: 'user', content: 'hi' }] },
    });
    expect(response.status()).toBe(200);
  }
  // An Anthropic client, translated for the OpenAI-compatible mock: its route is `messages`.
  const anthropic = await page.request.post(`${baseUrl()}/v1/messages`, {
    headers: { 'x-api-key': secret, 'anthropic-version': '2023-06-01' },
    data: { model: 'mock-small', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] },
  });
  expect(anthropic.status()).toBe(200);
  expect((await anthropic.json()).type).toBe('message');

  // Records are written in batches within a fraction of a second; the page is a snapshot (its
  // parts are read one after another), so wait for one where every part has all three.
  const summary = page.getByTestId('usage-summary');
  await expect(async () => {
    await page.goto(`${baseUrl()}/usage?period=today`);
    await expect(page.getByTestId('request-count')).toContainText('3 matching requests', { timeout: 1000 });
    await expect(summary.locator('.card').first()).toContainText('3', { timeout: 1000 });
  }).toPass({ timeout: 15_000 });
  await hydrated(page);
  await expect(summary).toContainText('Requests');
  await expect(summary.locator('.card').first()).toContainText('3');
  const log = page.getByRole('table', { name: 'Request log' });
  await expect(log.getByRole('row').filter({ hasText: 'mock-small' })).toHaveCount(3);
  await expect(log).toContainText('usage-key');
  // Each call's steps open from its row: here one attempt, answered by the mock.
  const row = log.getByRole('row').filter({ hasText: 'messages' });
  await row.locator('summary').click();
  await expect(row.locator('details.steps li')).toHaveText(/^attempt 1: Mock \(openai_compatible, mock-small\) at \+\d+ ms, \d+ ms: answered$/);
  await expect(page.getByTestId('usage-chart').first()).toBeVisible();
  await expect(page.locator('svg[data-testid="usage-chart"] rect[fill]').first()).toBeVisible();

  // Filters work as a plain GET form.
  await page.locator('select[name="route"]').selectOption('messages');
  await page.getByRole('button', { name: 'Filter' }).click();
  await expect(page.getByTestId('request-count')).toContainText('1 matching requests');
  await expect(log.getByRole('row').filter({ hasText: 'messages' })).toHaveCount(1);
  await page.locator('select[name="route"]').selectOption('');
  await page.getByLabel('Status').selectOption('error');
  await page.getByRole('button', { name: 'Filter' }).click();
  await expect(page.getByTestId('request-count')).toContainText('0 matching requests');
});
