import { execFileSync } from 'node:child_process';
import { test, expect, type Page } from '@playwright/test';
import { VALID_KEY } from '../mock-upstream';
import { startPerpetuo, type RunningPerpetuo } from '../perpetuo-server';
import { PASSWORD, hydrated, uniqueEmail, watch } from './helpers';

// A newcomer's first run, as the README tells it: a fresh server (default settings: sign-up by
// invitation, so the first account needs the setup code from the log), then only what the pages
// say: sign up, add a provider, create a key, run the curl line the page shows, see the call in
// Usage. With JavaScript on and off, each on its own empty database.

for (const js of [true, false]) {
  test.describe(`first run, JavaScript ${js ? 'on' : 'off'}`, () => {
    test.use({ javaScriptEnabled: js });
    let server: RunningPerpetuo;
    test.beforeEach(async () => {
      // The mock provider is on 127.0.0.1: the README says local hosts need this.
      server = await startPerpetuo({ ALLOW_PRIVATE_UPSTREAMS: 'true' });
    });
    test.afterEach(async () => {
      await server.stop();
    });

    test('from an empty database to the first call in the usage tab', async ({ page, browser }) => {
      const problems = js ? watch(page) : [];
      const ready = async (p: Page) => {
        if (js) await hydrated(p);
      };

      // The log says where to go and gives the code.
      const announced = server.log().match(/create the first one at (\S+) with the setup code ([0-9A-Z-]{19})/);
      expect(announced, server.log()).not.toBeNull();
      const [, signupUrl, code] = announced!;
      expect(signupUrl).toBe(`${server.url}/signup`);

      // A stranger who finds the page first cannot take the server.
      const stranger = await browser.newContext({ javaScriptEnabled: js });
      const intruder = await stranger.newPage();
      await intruder.goto(signupUrl);
      await ready(intruder);
      await expect(intruder.getByTestId('first-account')).toContainText('setup code');
      await intruder.getByLabel('Email').fill(uniqueEmail('stranger'));
      await intruder.getByLabel('Password').fill(PASSWORD);
      await intruder.getByLabel('Setup code').fill('2345-6789-ABCD-EFGH');
      await intruder.getByRole('button', { name: 'Create account' }).click();
      await expect(intruder.getByRole('alert')).toContainText('setup code is not right');
      await stranger.close();

      // The operator: the front page leads to sign-in, which leads to sign-up.
      await page.goto(server.url);
      await ready(page);
      await page.getByRole('link', { name: 'Create the first one' }).click();
      await expect(page).toHaveURL(/\/signup$/);
      await ready(page);
      await expect(page.getByText('At least 10 characters')).toBeVisible();
      const email = uniqueEmail('operator');
      await page.getByLabel('Email').fill(email);
      await page.getByLabel('Password').fill(PASSWORD);
      await page.getByLabel('Setup code').fill(code.toLowerCase());
      await page.getByRole('button', { name: 'Create account' }).click();
      await expect(page).toHaveURL(/\/providers$/);
      await expect(page.getByTestId('signed-in-as')).toHaveText(email);
      await ready(page);

      // No provider yet: the page says what to add.
      const noProviders = page.getByTestId('no-providers');
      await expect(noProviders).toContainText('OpenAI-compatible');
      await expect(noProviders).toContainText('ALLOW_PRIVATE_UPSTREAMS=true');
      await page.getByLabel('Label', { exact: true }).fill('Local model');
      await page.getByLabel('Kind').selectOption('openai_compatible');
      await page.getByLabel('Base URL').first().fill(process.env.MOCK_UPSTREAM_URL!);
      await page.getByLabel('API key').fill(VALID_KEY);
      await page.getByLabel('Model allow-list').first().fill('mock-small');
      await page.getByRole('button', { name: 'Add provider' }).click();
      await expect(page.getByRole('row').filter({ hasText: 'Local model' })).toBeVisible();
      await expect(noProviders).toHaveCount(0);

      // The next step, from the page (the empty state names it) to the keys tab.
      await page.getByRole('link', { name: 'API keys' }).click();
      await expect(page).toHaveURL(/\/keys$/);
      await ready(page);
      await expect(page.getByTestId('no-keys')).toContainText('curl');
      await page.getByLabel('Name').fill('first-key');
      await page.getByRole('button', { name: 'Create key' }).click();
      const token = (await page.getByTestId('new-key').textContent())!.trim();
      expect(token).toMatch(/^pk_/);
      const curl = (await page.getByTestId('try-key').textContent())!.trim();
      expect(curl).toContain(`${server.url}/v1/chat/completions`);
      expect(curl).toContain(token);
      expect(curl).toContain('openai_compatible/mock-small');

      // Nothing in the usage tab yet: it says what will appear.
      await page.getByRole('link', { name: 'Usage' }).first().click();
      await expect(page).toHaveURL(/\/usage/);
      await ready(page);
      await expect(page.getByTestId('no-usage')).toContainText('API keys');

      // The line as shown, run by a shell.
      const answer = JSON.parse(execFileSync('bash', ['-c', `${curl} --silent --show-error --fail`], { encoding: 'utf8' }));
      expect(answer.object).toBe('chat.completion');
      expect(answer.choices[0].message.role).toBe('assistant');

      // The call shows in the usage tab (records land within a second: reload until it does).
      await expect(async () => {
        await page.reload();
        await expect(page.getByTestId('request-count')).toContainText('1 matching requests', { timeout: 1000 });
      }).toPass({ timeout: 15_000 });
      await ready(page);
      await expect(page.getByTestId('no-usage')).toHaveCount(0);
      const log = page.getByRole('table', { name: 'Request log' });
      await expect(log.getByRole('row').filter({ hasText: 'first-key' })).toContainText('mock-small');
      await expect(log).toContainText('Local model');

      // Invite a colleague: the whole link, which a person can open.
      await page.getByRole('link', { name: 'Workspaces' }).click();
      await expect(page).toHaveURL(/\/workspaces$/);
      await ready(page);
      await page.getByRole('button', { name: 'Create an invite link' }).click();
      const shown = page.getByText(new RegExp(`${server.url.replace(/[.]/g, '\\.')}/signup\\?invite=inv_[A-Za-z0-9_-]+`)).first();
      await expect(shown).toBeVisible();
      const link = (await shown.textContent())!.match(/http:\/\/\S+invite=inv_[A-Za-z0-9_-]+/)![0];
      await expect(page.getByRole('button', { name: 'Revoke' })).toHaveCount(1);
      const colleague = await browser.newContext({ javaScriptEnabled: js });
      const guest = await colleague.newPage();
      await guest.goto(link);
      await ready(guest);
      await expect(guest.getByTestId('invited')).toBeVisible();
      await expect(guest.getByTestId('first-account')).toHaveCount(0);
      const guestEmail = uniqueEmail('colleague');
      await guest.getByLabel('Email').fill(guestEmail);
      await guest.getByLabel('Password').fill(PASSWORD);
      await guest.getByRole('button', { name: 'Create account' }).click();
      await expect(guest).toHaveURL(/\/providers$/);
      await expect(guest.getByRole('row').filter({ hasText: 'Local model' })).toBeVisible();
      await colleague.close();

      // A second invite, revoked from the list of open ones.
      await page.reload();
      await ready(page);
      await expect(page.getByRole('button', { name: 'Revoke' })).toHaveCount(0);
      await page.getByRole('button', { name: 'Create an invite link' }).click();
      await expect(page.getByRole('button', { name: 'Revoke' })).toHaveCount(1);
      await page.getByRole('button', { name: 'Revoke' }).click();
      await expect(page.getByRole('button', { name: 'Revoke' })).toHaveCount(0);
      expect(problems).toEqual([]);
    });
  });
}
