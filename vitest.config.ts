import { defineConfig } from 'vitest/config';

// Integration tests start real Postgres and nats-server processes; two cores means two
// files at a time at most, and generous timeouts for process start-up.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
