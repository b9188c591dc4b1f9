import { startPerpetuo } from './perpetuo-server';
import { startMockUpstream } from './mock-upstream';

// Starts Perpetuo on 127.0.0.1:0 (a fresh in-memory database) and the mock upstream LLM provider
// the provider tests point at. Both URLs reach the tests via process.env. The first-run journey
// starts its own Perpetuo, as a newcomer would find it.
export default async function globalSetup() {
  const mock = await startMockUpstream();
  process.env.MOCK_UPSTREAM_URL = mock.url;
  const perpetuo = await startPerpetuo({
    ALLOW_PRIVATE_UPSTREAMS: 'true',
    // Every journey signs in from 127.0.0.1: the login throttle has its own API tests.
    RATE_LIMIT_LOGIN_PER_MIN: '1000',
    // Every journey signs up its own account: sign-up stays open for the suite.
    SIGNUP: 'open',
  });
  process.env.BASE_URL = perpetuo.url;
  // Playwright runs the returned function as the teardown.
  return async () => {
    await perpetuo.stop();
    await mock.close();
  };
}
