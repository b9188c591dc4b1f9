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
