import { test, expect } from '@playwright/test';
import { PASSWORD, baseUrl, signUp, uniqueEmail } from './helpers';

test.use({ javaScriptEnabled: false });

test('sign-up, errors and sign-out work with JavaScript disabled', async ({ page }) => {
  await page.goto(`${baseUrl()}/signup`);
  await page.getByLabel('Email').fill('not-an-email@x');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page.getByRole('alert')).toContainText('valid email');

  const email = uniqueEmail('nojs');
  await signUp(page, email, false);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page).toHaveURL(/\/signin$/);
  await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(0);
});
