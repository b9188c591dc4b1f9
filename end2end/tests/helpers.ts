import { expect, type Page } from '@playwright/test';

export const PASSWORD = 'correct horse battery staple';

export function baseUrl(): string {
  const url = process.env.BASE_URL;
  if (!url) throw new Error('BASE_URL is not set: global-setup did not start Perpetuo');
  return url;
}

export function uniqueEmail(tag: string): string {
  return `${tag}-${Date.now()}-${Math.floor(Math.random() * 1e6)}@example.com`;
}

/** Waits until the wasm has hydrated the page (the app marks <body> from a client-only effect). */
export async function hydrated(page: Page) {
  await expect(page.locator('body[data-hydrated="true"]')).toHaveCount(1);
}

export async function signUp(page: Page, email: string, js = true) {
  await page.goto(`${baseUrl()}/signup`);
  if (js) await hydrated(page);
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Create account' }).click();
  await expect(page).toHaveURL(/\/providers$/);
  await expect(page.getByTestId('signed-in-as')).toHaveText(email);
}

/**
 * Watches a page the way a person's browser console would: any console error, any uncaught
 * exception, and any failed server function call (`/fn/...` answering 4xx or 5xx) is recorded,
 * and the test fails on them at the end.
 */
export function watch(page: Page): string[] {
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()} (${message.location().url})`);
  });
  page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
  page.on('response', (response) => {
    const url = new URL(response.url());
    if (url.pathname.startsWith('/fn/') && response.status() >= 400) {
      problems.push(`server function ${url.pathname} answered ${response.status()}`);
    }
  });
  return problems;
}

