import { test, expect } from '@playwright/test';
import { PASSWORD, baseUrl, hydrated, signUp, uniqueEmail } from './helpers';

test('sign up, land signed in, sign out, sign in, switch workspace', async ({ page }) => {
  const email = uniqueEmail('journey');
  await signUp(page, email);

  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/signin$/);
  // Signed out: dashboard pages send you back to sign-in.
  await page.goto(`${baseUrl()}/keys`);
  await expect(page).toHaveURL(/\/signin$/);

  await hydrated(page);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill('not the password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toHaveText('Invalid email or password.');

  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page).toHaveURL(/\/providers$/);
  await expect(page.getByTestId('signed-in-as')).toHaveText(email);

  // A second workspace, then switch to it from the header.
  await page.getByRole('link', { name: 'Workspaces' }).click();
  await expect(page).toHaveURL(/\/workspaces$/);
  await hydrated(page);
  await page.getByLabel('Name').fill('Research');
  await page.getByRole('button', { name: 'Create workspace' }).click();
  await expect(page.getByRole('button', { name: 'Switch to Research' })).toBeVisible();
  await page.getByRole('button', { name: 'Switch to Research' }).click();
  await expect(page).toHaveURL(/\/providers$/);
  await expect(page.getByLabel('Workspace')).toHaveValue(/.+/);
  const selected = await page.getByLabel('Workspace').locator('option:checked').textContent();
  expect(selected).toBe('Research');
});

test('duplicate sign-up says so', async ({ page }) => {
  const email = uniqueEmail('dup');
  await signUp(page, email);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.goto(`${baseUrl()}/signup`);
  await hydrated(page);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.getByRole('alert')).toContainText('already exists');
});

test('change the password, then sign out everywhere', async ({ page, browser }) => {
  const email = uniqueEmail('account');
  await signUp(page, email);
  // A second device, signed in with the same account.
  const other = await browser.newPage();
  await other.goto(`${baseUrl()}/signin`);
  await hydrated(other);
  await other.getByLabel('Email').fill(email);
  await other.getByLabel('Password').fill(PASSWORD);
  await other.getByRole('button', { name: 'Sign in' }).click();
  await expect(other).toHaveURL(/\/providers$/);

  await page.getByRole('link', { name: 'Workspaces' }).click();
  await expect(page).toHaveURL(/\/workspaces$/);
  await hydrated(page);
  await page.getByLabel('Current password').fill('not the password');
  await page.getByLabel('New password').fill('a new passphrase for the journey');
  await page.getByRole('button', { name: 'Change password' }).click();
  await expect(page.getByRole('alert')).toHaveText('The current password is not right.');
  await page.getByLabel('Current password').fill(PASSWORD);
  await page.getByLabel('New password').fill('a new passphrase for the journey');
  await page.getByRole('button', { name: 'Change password' }).click();
  await expect(page.getByTestId('account-notice')).toContainText('Password changed.');

  // The other device is signed out; this one is not.
  await other.goto(`${baseUrl()}/keys`);
  await expect(other).toHaveURL(/\/signin$/);
  await page.getByRole('link', { name: 'API keys' }).click();
  await expect(page).toHaveURL(/\/keys$/);

  // Sign out everywhere: this session ends too.
  await page.getByRole('link', { name: 'Workspaces' }).click();
  await hydrated(page);
  await page.getByRole('button', { name: 'Sign out everywhere' }).click();
  await expect(page).toHaveURL(/\/signin$/);
  await page.goto(`${baseUrl()}/providers`);
  await expect(page).toHaveURL(/\/signin$/);
  await other.close();
});
