import { test, expect, type Page } from '@playwright/test';
import { VALID_KEY } from '../mock-upstream';
import { PASSWORD, baseUrl, hydrated, uniqueEmail, watch } from './helpers';

/** Clicks a tab in the header and waits for its page, hydrated. */
async function tab(page: Page, name: string, path: RegExp, heading: string) {
  await page.getByRole('navigation', { name: 'Dashboard' }).getByRole('link', { name }).click();
  await expect(page).toHaveURL(path);
  await expect(page.getByRole('heading', { level: 1, name: heading })).toBeVisible();
  await hydrated(page);
}

test('every tab and sub-page, reached by clicking, with no failed call and no console error', async ({ page }) => {
  const problems = watch(page);
  const email = uniqueEmail('tour');

  // From the sign-in page to sign-up by its link.
  await page.goto(`${baseUrl()}/signin`);
  await hydrated(page);
  await page.getByRole('link', { name: 'Create one' }).click();
  await expect(page).toHaveURL(/\/signup$/);
  await hydrated(page);
  await page.getByRole('link', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/signin$/);
  await page.getByRole('link', { name: 'Create one' }).click();
  await hydrated(page);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page).toHaveURL(/\/providers$/);
  await hydrated(page);

  // Every tab, in an order that goes through each transition a person might take, the usage tab
  // first reached from the providers tab (where the empty-filter report once failed).
  await tab(page, 'Usage', /\/usage$/, 'Usage');
  await expect(page.getByTestId('usage-summary')).toBeVisible();
  await tab(page, 'API keys', /\/keys$/, 'API keys');
  await tab(page, 'Workspaces', /\/workspaces$/, 'Workspaces');
  await tab(page, 'Providers', /\/providers$/, 'Providers');

  // Something to show: a provider, a key, and more calls than one page of the request log.
  await page.getByLabel('Label', { exact: true }).fill('Mock');
  await page.getByLabel('Kind').selectOption('openai_compatible');
  await page.getByLabel('Base URL').first().fill(process.env.MOCK_UPSTREAM_URL!);
  await page.getByLabel('API key').fill(VALID_KEY);
  await page.getByRole('button', { name: 'Add provider' }).click();
  await expect(page.getByRole('row').filter({ hasText: 'Mock' })).toBeVisible();
  await page.getByRole('button', { name: 'Test Mock' }).click();
  await expect(page.getByTestId('test-result')).toContainText('Connected');

  await tab(page, 'API keys', /\/keys$/, 'API keys');
  await page.getByLabel('Name').fill('tour-key');
  await page.getByRole('button', { name: 'Create key' }).click();
  const secret = (await page.getByTestId('new-key').textContent())!;
  for (let i = 0; i < 53; i++) {
    const response = await page.request.post(`${baseUrl()}/v1/chat/completions`, {
      headers: { authorization: `Bearer ${secret}` },
      data: { model: 'mock-small', messages: [{ role: 'user', content: `call ${i}` }] },
    });
    expect(response.status()).toBe(200);
  }

  // The usage tab and its sub-pages: the period form, the request filters, older and newer pages
  // of the log, the export. Records are written in batches: click until all are there.
  await tab(page, 'Usage', /\/usage$/, 'Usage');
  await expect(async () => {
    await page.getByRole('button', { name: 'Apply' }).click();
    await expect(page.getByTestId('request-count')).toContainText('53 matching requests', { timeout: 1000 });
  }).toPass({ timeout: 15_000 });
  await hydrated(page);
  await page.getByLabel('Break down by').selectOption('key');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page).toHaveURL(/by=key/);
  await expect(page.getByRole('heading', { name: 'By API key' })).toBeVisible();
  await hydrated(page);
  await page.getByRole('link', { name: 'Older →' }).click();
  await expect(page).toHaveURL(/cursor=/);
  await expect(page.getByRole('table', { name: 'Request log' }).getByRole('row')).toHaveCount(1 + 3);
  await hydrated(page);
  await page.getByRole('link', { name: '← Newest' }).click();
  await expect(page).not.toHaveURL(/cursor=/);
  await hydrated(page);
  await page.getByLabel('Status').selectOption('ok');
  await page.getByRole('button', { name: 'Filter' }).click();
  await expect(page.getByTestId('request-count')).toContainText('53 matching requests');
  await hydrated(page);
  const download = page.waitForEvent('download');
  await page.getByRole('link', { name: 'Export CSV' }).click();
  expect((await download).suggestedFilename()).toBe('perpetuo-requests.csv');

  // Back through the other tabs after the usage tab, then out and in again.
  await tab(page, 'Providers', /\/providers$/, 'Providers');
  await tab(page, 'Workspaces', /\/workspaces$/, 'Workspaces');
  await tab(page, 'API keys', /\/keys$/, 'API keys');
  await tab(page, 'Usage', /\/usage$/, 'Usage');
  await page.getByRole('link', { name: 'Perpetuo' }).click();
  await expect(page).toHaveURL(/\/providers$/);
  await hydrated(page);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/signin$/);
  await hydrated(page);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/providers$/);
  await hydrated(page);

  expect(problems, problems.join('\n')).toEqual([]);
});

test('the favicon is served', async ({ request }) => {
  const icon = await request.get(`${baseUrl()}/favicon.ico`);
  expect(icon.status()).toBe(200);
  expect(icon.headers()['content-type']).toMatch(/image/);
});
