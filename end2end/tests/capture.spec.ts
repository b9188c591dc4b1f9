import { test, expect, Page } from '@playwright/test';
import { VALID_KEY } from '../mock-upstream';
import { baseUrl, hydrated, signUp, uniqueEmail, watch } from './helpers';

// Body capture from the dashboard, JavaScript on and off: an owner turns it on in the workspaces
// tab, and the call's page (opened from the request log) shows the request (a pasted key
// redacted) and the answer, a stream also reassembled; turned off, a new call's page shows none.
const PASTED = 'sk-ant-api03-PastedKeyThatMustNeverBeShown0123456789';

async function openCall(page: Page, js: boolean, id: string) {
  const log = page.getByRole('table', { name: 'Request log' });
  await page.getByRole('navigation', { name: 'Dashboard' }).getByRole('link', { name: 'Usage' }).click();
  await expect(page).toHaveURL(/\/usage$/);
  await expect(async () => {
    await page.reload();
    await expect(log.getByLabel(`Steps of ${id}`).or(log.getByRole('button', { name: `Steps of ${id}` }))).toHaveCount(1, { timeout: 1000 });
  }).toPass({ timeout: 15_000 });
  if (js) await hydrated(page);
  await log.getByRole('button', { name: `Steps of ${id}` }).or(log.getByLabel(`Steps of ${id}`)).click();
  await page.getByRole('link', { name: `Call ${id}` }).click();
  await expect(page).toHaveURL(new RegExp(`/usage/requests/${id}$`));
  await expect(page.getByRole('heading', { name: `Call ${id}` })).toBeVisible();
}

for (const js of [true, false]) {
  test.describe(`body capture, JavaScript ${js ? 'on' : 'off'}`, () => {
    test.use({ javaScriptEnabled: js });

    test('capture on shows a call\'s bodies; capture off shows none', async ({ page }) => {
      const problems = js ? watch(page) : [];
      await signUp(page, uniqueEmail(`capture-${js ? 'js' : 'nojs'}`), js);
      if (js) await hydrated(page);
      await page.getByLabel('Label', { exact: true }).fill('Local');
      await page.getByLabel('Kind').selectOption('openai_compatible');
      await page.getByLabel('Base URL').first().fill(process.env.MOCK_UPSTREAM_URL!);
      await page.getByLabel('API key').fill(VALID_KEY);
      await page.getByRole('button', { name: 'Add provider' }).click();
      await expect(page.getByRole('row').filter({ hasText: 'Local' })).toBeVisible();

      await page.getByRole('link', { name: 'Workspaces' }).click();
      await expect(page.getByTestId('capture-state')).toHaveText(/^Off/);
      if (js) await hydrated(page);
      await page.getByLabel('Capture request and response bodies').check();
      await page.getByLabel('Keep bodies for (days)').fill('3');
      await page.getByRole('button', { name: 'Save capture' }).click();
      await expect(page.getByTestId('capture-state')).toHaveText('On: 100% of calls, kept 3 days.');

      await page.getByRole('link', { name: 'API keys' }).click();
      await page.getByLabel('Name').fill('capture-key');
      await page.getByRole('button', { name: 'Create key' }).click();
      const secret = (await page.getByTestId('new-key').textContent())!.trim();
      const call = (content: string, stream: boolean) =>
        page.request.post(`${baseUrl()}/v1/chat/completions`, {
          headers: { authorization: `Bearer ${secret}` },
          data: { model: 'mock-small', stream, messages: [{ role: 'user', content }] },
        });
      const whole = await call(`whole call, my key is ${PASTED}`, false);
      expect(whole.status()).toBe(200);
      const wholeId = whole.headers()['x-request-id'];
      const answer = await whole.json();
      const streamed = await call('streamed call', true);
      expect(streamed.status()).toBe(200);
      const streamId = streamed.headers()['x-request-id'];
      await streamed.text();

      await openCall(page, js, wholeId);
      await expect(page.getByRole('heading', { name: 'Bodies' })).toBeVisible();
      const request = page.getByLabel('Request', { exact: true });
      await expect(request).toContainText('whole call, my key is [REDACTED]');
      await expect(request).not.toContainText(PASTED);
      await expect(page.getByRole('heading', { name: /^Request \(.*1 credential-like value\(s\) redacted\)$/ })).toBeVisible();
      await expect(page.getByLabel('Response', { exact: true })).toContainText(answer.choices[0].message.content);

      await openCall(page, js, streamId);
      await expect(page.getByLabel('Request', { exact: true })).toContainText('streamed call');
      await expect(page.getByRole('heading', { name: 'Stream, reassembled' })).toBeVisible();
      await expect(page.getByLabel('Reassembled answer')).toContainText('"finish_reason": "stop"');
      await expect(page.getByLabel('Response', { exact: true })).toContainText('data: [DONE]');

      // Off again: the next call keeps nothing.
      await page.getByRole('link', { name: 'Workspaces' }).click();
      if (js) await hydrated(page);
      await page.getByLabel('Capture request and response bodies').uncheck();
      await page.getByRole('button', { name: 'Save capture' }).click();
      await expect(page.getByTestId('capture-state')).toHaveText(/^Off/);
      const off = await call('not captured', false);
      expect(off.status()).toBe(200);
      const offId = off.headers()['x-request-id'];
      await openCall(page, js, offId);
      await expect(page.getByTestId('no-bodies')).toContainText('No bodies were captured');
      await expect(page.getByLabel('Request', { exact: true })).toHaveCount(0);
      expect(problems).toEqual([]);
    });
  });
}
