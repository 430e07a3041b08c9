export * from '../../src/local/postgres.ts';
